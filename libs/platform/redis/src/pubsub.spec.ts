import type { Redis } from 'ioredis';
import { redisClientNamed, startPrivateRedis, testRedis, type PrivateRedis } from '@sotto/testing';
import { publish, subscribe, type Subscription } from './pubsub';

const CHANNEL = 'sotto:pubsub-spec:v1';
const NAME = 'sotto-pubsub-spec';

describe('subscribe on one Redis server', () => {
  // A Redis of this spec's own: its ACL is changed, which would touch every other suite's subscribers.
  let redis: PrivateRedis;
  let admin: Redis;
  let client: Redis;
  let subscription: Subscription | undefined;
  // What the subscription's callbacks do next, set by the test before it acts.
  let onMessage: (text: string) => void = () => undefined;
  let onDown: () => void = () => undefined;
  let onUp: () => void = () => undefined;
  const next = {
    message: () => new Promise<string>((resolve) => (onMessage = resolve)),
    down: () => new Promise<void>((resolve) => (onDown = resolve)),
    up: () => new Promise<void>((resolve) => (onUp = resolve)),
  };

  const subscriber = () => redisClientNamed(admin, NAME);

  /** The ids of the clients whose use of the channel the ACL refused, from ACL LOG. */
  const refusedSubscriptions = async (): Promise<string[]> => {
    const entries = (await admin.call('ACL', 'LOG')) as unknown[][];
    return entries.flatMap((entry) => {
      const fields = new Map<unknown, unknown>();
      for (let index = 0; index + 1 < entry.length; index += 2) fields.set(entry[index], entry[index + 1]);
      const client = /(?:^| )id=(\d+) /.exec(String(fields.get('client-info')))?.[1];
      return fields.get('reason') === 'channel' && fields.get('object') === CHANNEL && client ? [client] : [];
    });
  };

  beforeAll(async () => {
    redis = await startPrivateRedis();
    admin = testRedis(redis.url);
    client = testRedis(redis.url);
  });

  afterAll(async () => {
    await subscription?.close();
    client?.disconnect();
    admin?.disconnect();
    await redis?.stop();
  });

  it('subscribes again, on the same connection, once Redis grants the channel it refused', async () => {
    subscription = await subscribe(client, CHANNEL, {
      name: NAME,
      onMessage: (payload) => onMessage(payload.toString()),
      onDown: () => onDown(),
      onUp: () => onUp(),
    });
    const first = next.message();
    await publish(admin, CHANNEL, 'first');
    expect(await first).toBe('first');
    const before = await subscriber();
    expect(before?.channels).toBe(1);

    // Taking the channel away drops the subscriber; it reconnects, and its SUBSCRIBE is refused.
    const down = next.down();
    await admin.call('ACL', 'SETUSER', 'default', 'resetchannels');
    try {
      await down;
      expect(subscription.listening).toBe(false);
      let refused = await subscriber();
      while (refused === undefined || refused.id === before?.id) refused = await subscriber();
      // Redis logs the refusal of its SUBSCRIBE.
      while (!(await refusedSubscriptions()).includes(refused.id)) await admin.ping();
      expect(await subscriber()).toEqual({ id: refused.id, channels: 0 });

      // Granted again: no new connection comes to try again, so the refused one does, by itself.
      const up = next.up();
      await admin.call('ACL', 'SETUSER', 'default', 'allchannels');
      await up;
      expect(subscription.listening).toBe(true);
      expect(await subscriber()).toEqual({ id: refused.id, channels: 1 });
    } finally {
      await admin.call('ACL', 'SETUSER', 'default', 'allchannels');
    }
    const after = next.message();
    await publish(admin, CHANNEL, 'after');
    expect(await after).toBe('after');
  });
});
