import { status, type ServiceError } from '@grpc/grpc-js';
import type { Cluster, Redis } from 'ioredis';
import { gatewayEvents, presenceRegistry } from '@sotto/contracts';
import { keySlot } from '@sotto/platform/redis';
import {
  startPrivateRedisCluster,
  startTestPlatform,
  type Platform,
  type PrivateRedisCluster,
} from '@sotto/testing';
import { PublicApi, type Device, type Inbox } from './testing/public-api';

const BEFORE = 20;
const DURING = 60;
/** The message after which the master holding the recipient's mailbox is killed. */
const KILL_AFTER = 10;
/** Messages sent while slots move, and after which of them each move starts. */
const RESHARDED = 60;
const MOVE_MAILBOX_AFTER = 10;
const MOVE_CHANNEL_AFTER = 25;
const MOVE_PRESENCE_AFTER = 40;
/** How long the live stream may go without mail that was accepted after a move. */
const LIVE_WITHIN_MS = 10_000;

/**
 * The whole platform on a Redis Cluster of 3 masters and 3 replicas: mailboxes, presence, pub/sub
 * and rate limits spread over its slots. A master dies mid-traffic; its replica takes over; what was
 * accepted is delivered all the same.
 */
describe('the platform on a Redis Cluster', () => {
  let cluster: PrivateRedisCluster;
  let redis: Cluster;
  let platform: Platform;
  let api: PublicApi;

  beforeAll(async () => {
    cluster = await startPrivateRedisCluster();
    redis = cluster.client();
    const ready = new Promise<void>((resolve) => redis.once('ready', () => resolve()));
    platform = await startTestPlatform({}, { redisClusterNodes: cluster.nodes });
    api = new PublicApi(platform.gateway);
    await ready;
  });

  afterAll(async () => {
    api?.close();
    await platform?.stop();
    redis?.disconnect();
    await cluster?.stop();
  });

  /** Sends as a client does: UNAVAILABLE is tried again (with backoff), anything else fails the test. */
  async function sendUntilAccepted(from: Device, to: Device, body: string): Promise<number> {
    let retries = 0;
    for (;;) {
      try {
        await api.send(from, to, body);
        return retries;
      } catch (error) {
        if ((error as ServiceError).code !== status.UNAVAILABLE) throw error;
        retries += 1;
        await new Promise((resolve) => setTimeout(resolve, Math.min(50 * 2 ** retries, 1_000)));
      }
    }
  }

  /** Collects what a stream hands over, acknowledging each envelope, de-duplicated by GUID as the SDK does. */
  function collect(inbox: Inbox, into: Map<string, string>, until: () => boolean): Promise<void> {
    return (async () => {
      while (!until()) {
        const message = await inbox.next();
        if (message === 'end') return;
        if (message.envelope) {
          into.set(message.envelope.guid, Buffer.from(message.envelope.content).toString());
          inbox.ack([message.envelope.guid]);
        }
      }
    })();
  }

  it('drains an open stream by itself once the gateway hears events again, for the mail nudged while it was deaf', async () => {
    const alice = await api.register();
    const carol = await api.register();
    const inbox = api.connect(carol);
    const first = await inbox.next();
    expect(first !== 'end' && first.queueEmpty !== undefined).toBe(true);

    // The gateway's event subscription: a connection named after it on the master of its channel.
    const found = await Promise.all(
      redis.nodes('master').map(async (node) => {
        const line = ((await node.client('LIST')) as string)
          .split('\n')
          .find((each) => / name=sotto-gateway-events-/.test(each));
        return line === undefined ? [] : [{ node, line }];
      }),
    );
    const [subscriber] = found.flat();
    if (subscriber === undefined) throw new Error("no master holds the gateway's event subscription");
    const { node } = subscriber;
    const gatewayId = / name=sotto-gateway-events-(\S+)/.exec(subscriber.line)?.[1] ?? '';
    const clientId = /^id=(\d+)/.exec(subscriber.line)?.[1] ?? '';
    const channel = gatewayEvents.channel(gatewayId);
    const published = async (): Promise<number> =>
      Number(/cmdstat_spublish:calls=(\d+)/.exec(await node.info('commandstats'))?.[1] ?? 0);
    const subscribers = async (on: Redis): Promise<number> =>
      ((await on.call('PUBSUB', 'SHARDNUMSUB', channel)) as [string, number])[1];

    // The subscription is cut, and its master refuses it again until told otherwise: every nudge
    // published meanwhile reaches nobody.
    await node.call('ACL', 'SETUSER', 'default', '-ssubscribe');
    try {
      await node.client('KILL', 'ID', clientId);
      expect(await subscribers(node)).toBe(0);
      const before = await published();
      await sendUntilAccepted(alice, carol, 'sent while the gateway was deaf');
      // Routed, and its nudge published to the empty channel.
      while ((await published()) === before) await waitFor(50);
      expect(await subscribers(node)).toBe(0);
    } finally {
      await node.call('ACL', 'SETUSER', 'default', '+ssubscribe');
    }

    // The subscription comes back by itself; the stream gets the mail without the client doing anything.
    const arrived = await Promise.race([
      inbox.next(),
      waitFor(30_000).then(() => 'nothing in 30 s' as const),
    ]);
    inbox.call.end();
    if (arrived === 'nothing in 30 s' || arrived === 'end') throw new Error(`carol's stream got ${arrived}`);
    expect(Buffer.from(arrived.envelope?.content ?? []).toString()).toBe('sent while the gateway was deaf');
  });

  it('keeps delivering live on the same stream while the slots of its mailbox, event channel and presence move between masters', async () => {
    const alice = await api.register();
    const dave = await api.register();
    const inbox = api.connect(dave);
    const first = await inbox.next();
    expect(first !== 'end' && first.queueEmpty !== undefined).toBe(true);

    // Where dave's stream lives: the presence registry names the gateway holding it.
    const presenceKey = presenceRegistry.key({ accountId: dave.accountId, deviceId: 1 });
    const claim = presenceRegistry.decodeHolder(await redis.get(presenceKey));
    if (claim === undefined) throw new Error("dave's stream is not in the presence registry");
    const slots = {
      mailbox: keySlot(`sotto:mailbox:{${dave.accountId}:1}:queue`),
      channel: keySlot(gatewayEvents.channel(claim.gatewayId)),
      presence: keySlot(presenceKey),
    };

    // The live stream: every envelope is acknowledged and kept by GUID, as the SDK does; the time
    // each body arrived is kept, and a body shown under a second GUID is a duplicate the user sees.
    const shown = new Map<string, string>();
    const arrivedAt = new Map<string, number>();
    const twice: string[] = [];
    let ended = false;
    const live = (async () => {
      while (arrivedAt.size < RESHARDED) {
        const message = await inbox.next();
        if (message === 'end') {
          ended = true;
          return;
        }
        const envelope = message.envelope;
        if (envelope === undefined) continue;
        inbox.ack([envelope.guid]);
        if (shown.has(envelope.guid)) continue;
        const body = Buffer.from(envelope.content).toString();
        if (arrivedAt.has(body)) twice.push(body);
        shown.set(envelope.guid, body);
        arrivedAt.set(body, Date.now());
      }
    })();

    // Alice sends on; the slots move under her feet, one after another, each to another master.
    const sentAt = new Map<string, number>();
    const moves: { what: string; from: string; to: string; keys: number; ms: number }[] = [];
    let retries = 0;
    let moving = Promise.resolve();
    const move = (what: keyof typeof slots): void => {
      moving = moving.then(async () => {
        const started = Date.now();
        const moved = await cluster.moveSlot(slots[what]);
        moves.push({ what, ...moved, ms: Date.now() - started });
      });
    };
    for (let index = 0; index < RESHARDED; index++) {
      if (index === MOVE_MAILBOX_AFTER) move('mailbox');
      if (index === MOVE_CHANNEL_AFTER) move('channel');
      if (index === MOVE_PRESENCE_AFTER) move('presence');
      const body = `resharded-${index}`;
      retries += await sendUntilAccepted(alice, dave, body);
      sentAt.set(body, Date.now());
    }
    await moving;
    expect(moves.map((each) => each.what)).toEqual(['mailbox', 'channel', 'presence']);
    for (const each of moves) expect(each.to).not.toBe(each.from);

    // Everything arrives on the stream that was open all along, each within a bounded time of its send.
    const done = await Promise.race([live.then(() => true), waitFor(LIVE_WITHIN_MS).then(() => false)]);
    expect({ ended, missing: [...sentAt.keys()].filter((body) => !arrivedAt.has(body)) }).toEqual({
      ended: false,
      missing: [],
    });
    expect(done).toBe(true);
    expect(twice).toEqual([]);
    const lag = Math.max(...[...sentAt].map(([body, at]) => (arrivedAt.get(body) ?? Infinity) - at));
    expect(lag).toBeLessThan(LIVE_WITHIN_MS);
    // The stream's claim survived its key's move: same gateway, same stream, still live.
    expect(presenceRegistry.decodeHolder(await redis.get(presenceKey))).toEqual(claim);
    expect(await redis.pttl(presenceKey)).toBeGreaterThan(0);

    // A new connection finds nothing left that the live stream did not show.
    inbox.call.end();
    const again = api.connect(dave);
    const drained = new Map<string, string>();
    await collectUntilEmpty(again, drained);
    again.call.end();
    expect([...drained.values()].filter((body) => !arrivedAt.has(body))).toEqual([]);
    process.stdout.write(
      `redis cluster resharding: ${moves.map((each) => `${each.what} slot ${each.from} -> ${each.to} (${each.keys} keys, ${each.ms} ms)`).join(', ')}; ${retries} send retries; slowest delivery ${lag} ms; ${drained.size} re-sent on reconnect\n`,
    );
  }, 120_000);

  it('registers, sends and delivers, and loses nothing when a master is SIGKILLed mid-traffic', async () => {
    const alice = await api.register();
    const bob = await api.register();
    const received = new Map<string, string>();
    const bodies = (prefix: string, count: number): string[] =>
      Array.from({ length: count }, (_, i) => `${prefix}-${i}`);

    // Before the fault: sent, routed into bob's mailbox, delivered on his stream in order.
    const inbox = api.connect(bob);
    const first = await inbox.next();
    expect(first !== 'end' && first.queueEmpty !== undefined).toBe(true);
    const before = bodies('before', BEFORE);
    for (const body of before) await sendUntilAccepted(alice, bob, body);
    await collect(inbox, received, () => received.size === BEFORE);
    expect([...received.values()]).toEqual(before);

    // The master that holds bob's mailbox dies while alice keeps sending.
    const mailboxKey = `sotto:mailbox:{${bob.accountId}:1}:queue`;
    const master = redis.slots[keySlot(mailboxKey)]?.[0];
    if (master === undefined) throw new Error("no master known for bob's mailbox");
    const during = bodies('during', DURING);
    let retries = 0;
    const live = collect(inbox, received, () => received.size === BEFORE + DURING);
    for (const [index, body] of during.entries()) {
      if (index === KILL_AFTER) await cluster.kill(master);
      retries += await sendUntilAccepted(alice, bob, body);
    }
    // cluster_state:ok on every live node: every slot is served again, the dead master's by its replica.
    await cluster.waitHealthy();
    await new Promise<void>((resolve, reject) =>
      redis.refreshSlotsCache((error) => (error ? reject(error) : resolve())),
    );
    expect(redis.slots[keySlot(mailboxKey)]?.[0]).not.toBe(master);

    // Whatever the live stream missed while notifications were down is still in the mailbox, or
    // still in Kafka while the relay waits out the failover: a new connection drains the mailbox
    // and then gets the rest as the relay routes it. Nothing accepted is lost (it arrives within a
    // minute of the cluster's recovery), and nothing is shown twice.
    const seenLive = await Promise.race([live.then(() => received.size), waitFor(30_000).then(() => -1)]);
    inbox.call.end();
    const drained = new Map<string, string>();
    const complete = (): boolean => new Set([...received.keys(), ...drained.keys()]).size === BEFORE + DURING;
    const deadline = Date.now() + 60_000;
    while (!complete() && Date.now() < deadline) {
      const again = api.connect(bob);
      await Promise.race([collect(again, drained, complete), waitFor(deadline - Date.now())]);
      again.call.end();
      if (!complete()) await waitFor(200);
    }
    for (const [guid, body] of drained) received.set(guid, body);
    const shown = [...received.values()];
    expect(new Set(shown).size).toBe(shown.length);
    expect(shown.sort()).toEqual([...before, ...during].sort());
    // For the report: how the fault looked from the client's side.
    process.stdout.write(
      `redis cluster failover: ${retries} send retries, ${seenLive < 0 ? 'not all' : 'all'} delivered live, ${drained.size} on reconnect\n`,
    );
  }, 300_000);
});

function waitFor(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Everything a new stream hands over up to the empty-queue marker, acknowledged. */
async function collectUntilEmpty(inbox: Inbox, into: Map<string, string>): Promise<void> {
  for (const envelope of await inbox.untilEmpty()) {
    into.set(envelope.guid, Buffer.from(envelope.content).toString());
  }
}
