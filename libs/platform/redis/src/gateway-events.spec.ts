import { randomUUID } from 'node:crypto';
import type { Cluster } from 'ioredis';
import { gatewayEvents, presenceRegistry } from '@sotto/contracts';
import { startPrivateRedisCluster, testRedis, type PrivateRedisCluster } from '@sotto/testing';
import { locateHolders, publishToGateways, publishToHolders, type GatewayDevice } from './gateway-events';
import { subscribe, type Subscription } from './pubsub';
import type { Redis } from './redis.module';

/** What a gateway heard on its event channel, decoded. */
interface Listener {
  readonly heard: gatewayEvents.Event[];
  /** Resolves once `count` events have been heard in all. */
  until(count: number): Promise<void>;
  readonly subscription: Subscription;
}

async function listen(redis: Redis, gatewayId: string): Promise<Listener> {
  const heard: gatewayEvents.Event[] = [];
  const waiting: { count: number; resolve: () => void }[] = [];
  const subscription = await subscribe(redis, gatewayEvents.channel(gatewayId), {
    name: 'sotto-gateway-events-spec',
    onMessage: (message) => {
      heard.push(gatewayEvents.decode(message));
      for (const each of waiting) if (heard.length >= each.count) each.resolve();
    },
  });
  return {
    heard,
    subscription,
    until: (count) =>
      heard.length >= count ? Promise.resolve() : new Promise((resolve) => waiting.push({ count, resolve })),
  };
}

const deviceOf = (accountId: string, deviceId: number): GatewayDevice => ({ accountId, deviceId });

/** Claims each device for its holder, as presence writes the registry. */
async function claim(
  redis: Redis,
  claims: readonly [GatewayDevice, presenceRegistry.Holder][],
): Promise<void> {
  for (const [device, holder] of claims) {
    await redis.set(presenceRegistry.key(device), presenceRegistry.encodeHolder(holder), 'PX', 60_000);
  }
}

/** The same journey on a server and on a cluster: devices spread over accounts (slots), two gateways. */
async function expectEachHolderTold(redis: Redis): Promise<void> {
  const [gatewayA, gatewayB] = [`gw-${randomUUID()}`, `gw-${randomUUID()}`];
  const held = Array.from({ length: 12 }, (_, index) => deviceOf(randomUUID(), index + 1));
  const unheld = deviceOf(randomUUID(), 1);
  const holderOf = (index: number): presenceRegistry.Holder => ({
    gatewayId: index % 2 === 0 ? gatewayA : gatewayB,
    streamId: `stream-${index}`,
  });
  await claim(
    redis,
    held.map((device, index) => [device, holderOf(index)]),
  );
  const [a, b] = await Promise.all([listen(redis, gatewayA), listen(redis, gatewayB)]);
  try {
    const devices = [unheld, ...held];
    expect(await locateHolders(redis, devices)).toEqual([
      undefined,
      ...held.map((_, index) => holderOf(index)),
    ]);

    const asked: GatewayDevice[] = [];
    const published = await publishToHolders(
      redis,
      devices,
      (device) => device,
      (device) => {
        asked.push(device);
        return { displaced: { byGatewayId: `by-${device.accountId}` } };
      },
    );
    expect(published).toBe(held.length);
    // A device without a stream costs no event, and its kind is never built.
    expect(asked).toEqual(held);
    await Promise.all([a.until(6), b.until(6)]);
    const expected = (gatewayId: string) =>
      held.flatMap((device, index) =>
        holderOf(index).gatewayId === gatewayId
          ? [{ device, streamId: `stream-${index}`, displaced: { byGatewayId: `by-${device.accountId}` } }]
          : [],
      );
    expect(a.heard).toEqual(expected(gatewayA));
    expect(b.heard).toEqual(expected(gatewayB));
  } finally {
    await Promise.all([a.subscription.close(), b.subscription.close()]);
  }
}

describe('gateway events on one Redis server', () => {
  let redis: Redis;
  beforeAll(() => {
    redis = testRedis();
  });
  afterAll(async () => {
    await redis.quit();
  });

  it('tells the gateway holding each device, and no one about a device without a stream', async () => {
    await expectEachHolderTold(redis);
  });

  it('reads a malformed registry entry as no holder', async () => {
    const device = deviceOf(randomUUID(), 1);
    await redis.set(presenceRegistry.key(device), 'no-space', 'PX', 60_000);
    expect(await locateHolders(redis, [device])).toEqual([undefined]);
    expect(
      await publishToHolders(
        redis,
        [device],
        (each) => each,
        () => ({ newMail: { mail: [] } }),
      ),
    ).toBe(0);
  });

  it('publishes events to holders already known, and nothing when there are none', async () => {
    const gatewayId = `gw-${randomUUID()}`;
    const device = deviceOf(randomUUID(), 3);
    const listener = await listen(redis, gatewayId);
    try {
      await publishToGateways(redis, []);
      await publishToGateways(redis, [
        { device, holder: { gatewayId, streamId: 's' }, kind: { newMail: { mail: [] } } },
      ]);
      await listener.until(1);
      expect(listener.heard).toEqual([{ device, streamId: 's', newMail: { mail: [] } }]);
    } finally {
      await listener.subscription.close();
    }
  });
});

describe('gateway events on a Redis Cluster', () => {
  let cluster: PrivateRedisCluster;
  let redis: Cluster;

  beforeAll(async () => {
    cluster = await startPrivateRedisCluster();
    redis = cluster.client();
    await new Promise<void>((resolve) => redis.once('ready', () => resolve()));
  });
  afterAll(async () => {
    redis.disconnect();
    await cluster.stop();
  });

  it('tells the gateway holding each device, its registry entries and channels on several masters', async () => {
    await expectEachHolderTold(redis);
  });
});
