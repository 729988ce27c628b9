import { randomUUID } from 'node:crypto';
import { Test } from '@nestjs/testing';
import { Cluster, type Redis as Server } from 'ioredis';
import { parseEnvironment } from '@sotto/platform/config';
import { DependencyUnavailableError } from '@sotto/platform/grpc';
import { Readiness, ReadinessModule } from '@sotto/platform/health';
import { startPrivateRedisCluster, testRedis, type PrivateRedisCluster } from '@sotto/testing';
import {
  groupBySlot,
  keySlot,
  pipelineEach,
  publish,
  publishEach,
  RateLimiter,
  REDIS,
  RedisModule,
  redisConnection,
  redisEnv,
  subscribe,
  whileAvailable,
  type Redis,
  type RedisConnection,
} from './index';

/** The platform's Redis client, as a service starts it. */
async function start(connection: RedisConnection) {
  const moduleRef = await Test.createTestingModule({
    imports: [ReadinessModule, RedisModule.forRoot(connection)],
  }).compile();
  moduleRef.enableShutdownHooks();
  return moduleRef;
}

/** The next message `subscribe` hands over, as text. */
function nextMessage(): { received: Promise<string>; onMessage: (message: Buffer) => void } {
  let deliver: (text: string) => void = () => undefined;
  const received = new Promise<string>((resolve) => (deliver = resolve));
  return { received, onMessage: (message) => deliver(message.toString()) };
}

describe('keySlot', () => {
  it('computes Redis Cluster slots: CRC16 of the key, or of its hash tag only', () => {
    // Values from the Redis Cluster specification and CLUSTER KEYSLOT.
    expect(keySlot('123456789')).toBe(0x31c3);
    expect(keySlot('foo')).toBe(12182);
    expect(keySlot('{user1000}.following')).toBe(keySlot('{user1000}.followers'));
    expect(keySlot('{user1000}.following')).toBe(keySlot('user1000'));
    // An empty tag, or none closed, hashes the whole key.
    expect(keySlot('foo{}{bar}')).not.toBe(keySlot('bar'));
    expect(keySlot('foo{bar')).toBe(keySlot('foo{bar'));
    expect(keySlot('foo{{bar}}zap')).toBe(keySlot('{bar'));
  });
});

describe('whileAvailable', () => {
  /** An error reply as ioredis gives it (its ReplyError class is untyped). */
  const replyError = (message: string): Error => Object.assign(new Error(message), { name: 'ReplyError' });
  const failing = (error: Error) => () => Promise.reject(error);

  it('turns an outage into UNAVAILABLE for the caller: a lost connection, a cluster between states', async () => {
    for (const error of [
      new Error('Connection is closed.'),
      new Error('Too many Cluster redirections. Last error: Error: Connection is closed.'),
      replyError('CLUSTERDOWN The cluster is down'),
      replyError('TRYAGAIN Multiple keys request during rehashing of slot'),
    ]) {
      await expect(whileAvailable('mailboxes', failing(error))).rejects.toThrow(DependencyUnavailableError);
    }
    await expect(whileAvailable('mailboxes', failing(new Error('Connection is closed.')))).rejects.toThrow(
      'mailboxes are unavailable (Redis failed: Connection is closed.); try again',
    );
  });

  it('keeps any other error reply as it is: a bug in the command, not an outage', async () => {
    const crossSlot = replyError("CROSSSLOT Keys in request don't hash to the same slot");
    await expect(whileAvailable('mailboxes', failing(crossSlot))).rejects.toBe(crossSlot);
    expect(await whileAvailable('mailboxes', () => Promise.resolve(7))).toBe(7);
  });
});

describe('on a Redis Cluster', () => {
  let cluster: PrivateRedisCluster;
  let redis: Cluster;

  beforeAll(async () => {
    cluster = await startPrivateRedisCluster();
    redis = cluster.client();
    // Ready: it has learned the slots and connected to every master.
    await new Promise<void>((resolve) => redis.once('ready', () => resolve()));
  });
  afterAll(async () => {
    redis.disconnect();
    await cluster.stop();
  });

  it('agrees with the cluster on every slot', async () => {
    const keys = ['123456789', 'foo', '{user1000}.following', 'foo{}{bar}', 'foo{{bar}}zap', randomUUID()];
    for (const key of keys) expect(await redis.cluster('KEYSLOT', key)).toBe(keySlot(key));
  });

  it('starts a service on REDIS_CLUSTER_NODES over mutual TLS, ready, and closes it on shutdown', async () => {
    const moduleRef = await start(redisConnection(parseEnvironment(redisEnv, cluster.env)));
    const client = moduleRef.get<Redis>(REDIS);
    expect(client).toBeInstanceOf(Cluster);
    expect(await client.ping()).toBe('PONG');
    expect(await moduleRef.get(Readiness).report()).toEqual({ ready: true, checks: { redis: 'ok' } });
    const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
    await moduleRef.close();
    await ended;
    expect(client.status).toBe('end');
  });

  it('fails to start, naming the nodes, when no node of the cluster answers', async () => {
    await expect(start({ clusterNodes: ['127.0.0.1:1'] })).rejects.toThrow(
      /^cannot connect to the Redis Cluster at 127\.0\.0\.1:1: /,
    );
  });

  it('refuses a node that presents no client certificate: mutual TLS on every node', async () => {
    const env = { ...cluster.env, REDIS_TLS_CERT: undefined, REDIS_TLS_KEY: undefined };
    await expect(start(redisConnection(parseEnvironment(redisEnv, env)))).rejects.toThrow(
      /^cannot connect to the Redis Cluster at /,
    );
  });

  it('keeps a multi-key script to one slot: one group per slot, each answered in order', async () => {
    const keys = Array.from({ length: 40 }, () => `sotto:test:{${randomUUID()}}`);
    const groups = groupBySlot(redis, keys, (key) => key);
    expect(groups.flat().sort()).toEqual([...keys].sort());
    for (const group of groups) expect(new Set(group.map(keySlot)).size).toBe(1);
    // A script over one group's keys runs; over keys of several slots the cluster refuses it.
    await expect(redis.eval('return #KEYS', 2, keys[0] ?? '', keys[1] ?? '')).rejects.toThrow(
      /CROSSSLOT|slot/i,
    );
    const results = await pipelineEach(
      redis,
      keys,
      (key) => key,
      (pipeline, key) => pipeline.set(key, key).get(key),
    );
    // Two commands an item: pipelineEach answers one reply per item, the first command's.
    expect(results.every(([error]) => error === null)).toBe(true);
    expect(await Promise.all(keys.map((key) => redis.get(key)))).toEqual(keys);
    const replies = await pipelineEach(
      redis,
      keys,
      (key) => key,
      (pipeline, key) => pipeline.get(key),
    );
    expect(replies).toEqual(keys.map((key) => [null, key]));
  });

  it('keeps the rate limiter on a cluster: a subject cannot spend more than its bucket', async () => {
    const limiter = new RateLimiter(redis);
    const subject = randomUUID();
    const results = await Promise.all(
      Array.from({ length: 12 }, () => limiter.take('test', subject, { burst: 5, periodMs: 3_600_000 })),
    );
    expect(results.filter((result) => result.allowed)).toHaveLength(5);
  });

  it('carries sharded pub/sub (SPUBLISH) to a subscriber on the channel’s master, never classic PUBLISH', async () => {
    const channel = `sotto:test:${randomUUID()}`;
    const first = nextMessage();
    const subscription = await subscribe(redis, channel, { name: 'sotto-test', onMessage: first.onMessage });
    try {
      expect(subscription.listening).toBe(true);
      // A classic PUBLISH on the cluster bus does not reach a sharded subscriber.
      await redis.publish(channel, 'classic');
      await publish(redis, channel, 'sharded');
      expect(await first.received).toBe('sharded');
      const channels = Array.from({ length: 20 }, () => `sotto:test:${randomUUID()}`);
      const heard: string[] = [];
      let allHeard: () => void = () => undefined;
      const everyChannelHeard = new Promise<void>((resolve) => (allHeard = resolve));
      const hear = (message: Buffer): void => {
        heard.push(message.toString());
        if (heard.length === channels.length) allHeard();
      };
      const subscriptions = await Promise.all(
        channels.map((each) => subscribe(redis, each, { name: 'sotto-test', onMessage: hear })),
      );
      await publishEach(
        redis,
        channels,
        (each) => each,
        (each) => each,
      );
      await everyChannelHeard;
      expect(heard.sort()).toEqual([...channels].sort());
      await Promise.all(subscriptions.map((each) => each.close()));
    } finally {
      await subscription.close();
    }
  });

  it('follows a channel to the replica promoted when its master is killed, saying when it was down', async () => {
    const channel = `sotto:test:${randomUUID()}`;
    const events: string[] = [];
    let back: () => void = () => undefined;
    const up = new Promise<void>((resolve) => (back = resolve));
    let hear: (text: string) => void = () => undefined;
    const subscription = await subscribe(redis, channel, {
      name: 'sotto-test',
      onMessage: (message) => hear(message.toString()),
      onDown: () => events.push('down'),
      onUp: () => {
        events.push('up');
        back();
      },
    });
    try {
      const slot = keySlot(channel);
      const master = redis.slots[slot]?.[0];
      if (master === undefined) throw new Error(`no master known for slot ${slot}`);
      await cluster.kill(master);
      await up;
      expect(events).toEqual(['down', 'up']);
      expect(subscription.listening).toBe(true);
      await cluster.waitHealthy();
      const heard = new Promise<string>((resolve) => (hear = resolve));
      await publish(redis, channel, 'after the failover');
      expect(await heard).toBe('after the failover');
      expect(redis.slots[slot]?.[0]).not.toBe(master);
    } finally {
      await subscription.close();
    }
  });

  it('writes every item of a pipeline whose slot is half migrated: the moved keys are sent again where ASK points', async () => {
    const tag = randomUUID();
    const keys = Array.from({ length: 10 }, (_, i) => `sotto:test:{${tag}}:${i}`);
    const slot = keySlot(keys[0] ?? '');
    const address = (node: Server): string => `${String(node.options.host)}:${String(node.options.port)}`;
    const source = redis.nodes('master').find((node) => address(node) === redis.slots[slot]?.[0]);
    const target = redis.nodes('master').find((node) => node !== source);
    if (source === undefined || target === undefined) throw new Error(`no masters known for slot ${slot}`);
    await Promise.all(keys.map((key) => redis.set(key, 'before')));
    const sourceId = await source.cluster('MYID');
    const targetId = await target.cluster('MYID');
    const migrate = (some: string[]): Promise<unknown> =>
      source.migrate(String(target.options.host), String(target.options.port), '', 0, 5_000, 'KEYS', ...some);
    // Mid-migration: the first half of the keys is on the target already, the rest still on the source.
    await target.cluster('SETSLOT', slot, 'IMPORTING', sourceId);
    await source.cluster('SETSLOT', slot, 'MIGRATING', targetId);
    await migrate(keys.slice(0, 5));
    try {
      const results = await pipelineEach(
        redis,
        keys,
        (key) => key,
        (pipeline, key) => pipeline.set(key, 'during'),
      );
      expect(results).toEqual(keys.map(() => [null, 'OK']));
      expect(await source.mget(...keys.slice(5))).toEqual(keys.slice(5).map(() => 'during'));
    } finally {
      await migrate(keys.slice(5));
      for (const node of [target, source]) await node.cluster('SETSLOT', slot, 'NODE', targetId);
    }
    expect(await target.mget(...keys)).toEqual(keys.map(() => 'during'));
  });

  it('follows a channel to the master its slot is resharded to, saying when it was down', async () => {
    const channel = `sotto:test:${randomUUID()}`;
    const events: string[] = [];
    let back: () => void = () => undefined;
    const up = new Promise<void>((resolve) => (back = resolve));
    let hear: (text: string) => void = () => undefined;
    const subscription = await subscribe(redis, channel, {
      name: 'sotto-test',
      onMessage: (message) => hear(message.toString()),
      onDown: () => events.push('down'),
      onUp: () => {
        events.push('up');
        back();
      },
    });
    try {
      const moved = await cluster.moveSlot(keySlot(channel));
      // Nothing else tells this client the slot moved: no command of its own touches it.
      await up;
      expect(events).toEqual(['down', 'up']);
      const heard = new Promise<string>((resolve) => (hear = resolve));
      await publish(redis, channel, 'after the resharding');
      expect(await heard).toBe('after the resharding');
      expect(redis.slots[keySlot(channel)]?.[0]).toBe(moved.to);
    } finally {
      await subscription.close();
    }
  });
});

describe('on one Redis server', () => {
  it('keeps classic pub/sub and one pipeline, one group', async () => {
    const redis = testRedis();
    try {
      const keys = Array.from({ length: 10 }, () => `sotto:test:{${randomUUID()}}`);
      expect(groupBySlot(redis, keys, (key) => key)).toEqual([keys]);
      const channel = `sotto:test:${randomUUID()}`;
      const first = nextMessage();
      const subscription = await subscribe(redis, channel, {
        name: 'sotto-test',
        onMessage: first.onMessage,
      });
      try {
        // A classic PUBLISH from anyone reaches it: on one server the channel is classic.
        await redis.publish(channel, 'classic');
        expect(await first.received).toBe('classic');
      } finally {
        await subscription.close();
      }
    } finally {
      await redis.quit();
    }
  });
});
