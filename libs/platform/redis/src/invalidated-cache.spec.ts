import type { Redis } from 'ioredis';
import { redisClientNamed, startPrivateRedis, testRedis, type PrivateRedis } from '@sotto/testing';
import { InvalidatedCache, type InvalidatedCacheOptions } from './invalidated-cache';
import { publish } from './pubsub';

const CHANNEL = 'sotto:invalidated-cache-spec:v1';
const NAME = 'sotto-invalidated-cache-spec';

/** A read of the source the test answers when it chooses. */
interface HeldRead {
  readonly keys: string[];
  answer(): void;
}

describe('InvalidatedCache, kept current over Redis pub/sub', () => {
  // A Redis of this spec's own: one test takes the channel away, which would touch other suites.
  let redis: PrivateRedis;
  let admin: Redis;
  let client: Redis;
  let cache: InvalidatedCache<string> | undefined;

  /** What the source answers now: a key absent is one the source has nothing for. */
  const source = new Map<string, string>();
  /** Every read of the source, by the keys it asked for. */
  let reads: string[][] = [];
  /** While set, reads wait here until the test answers them. */
  let held: HeldRead[] | undefined;
  let clock = 0;
  /** The connection name of the cache started last: each its own, as one closed may linger in CLIENT LIST. */
  let subscriber = NAME;
  let started = 0;
  /** Resolved by each notice the cache hears, once it has acted on it. */
  let heard: (key: string) => void = () => undefined;
  const nextNotice = () => new Promise<string>((resolve) => (heard = resolve));

  const start = async (options: Partial<InvalidatedCacheOptions<string>> = {}) => {
    subscriber = `${NAME}-${++started}`;
    cache = new InvalidatedCache<string>(client, {
      what: 'spec',
      channel: CHANNEL,
      subscriber,
      ttlMs: 60_000,
      maxEntries: 100,
      keyOf: (notice) => {
        const key = notice.toString();
        if (key === 'undecodable') throw new Error('not a notice');
        // Resolving lets the test go on only after the cache dropped the key (this turn, below).
        heard(key);
        return key;
      },
      read: (keys) => {
        reads.push(keys);
        // The source as it is when the read reaches it; the answer may come back later.
        const answers = keys.map((key) => source.get(key));
        if (held === undefined) return Promise.resolve(answers);
        const waiting = held;
        return new Promise((resolve) => waiting.push({ keys, answer: () => resolve(answers) }));
      },
      now: () => clock,
      ...options,
    });
    await cache.start();
    return cache;
  };

  /** Publishes a notice naming `key` and waits until the cache has heard it. */
  const notify = async (key: string): Promise<void> => {
    const arrived = nextNotice();
    await publish(admin, CHANNEL, key);
    expect(await arrived).toBe(key);
  };

  const values = async (keys: string[]) => (await cache!.getMany(keys)).map((each) => each.value);
  const sources = async (keys: string[]) => (await cache!.getMany(keys)).map((each) => each.source);

  beforeAll(async () => {
    redis = await startPrivateRedis();
    admin = testRedis(redis.url);
    client = testRedis(redis.url);
  });

  beforeEach(() => {
    source.clear();
    reads = [];
    held = undefined;
    clock = 0;
  });

  afterEach(async () => {
    await cache?.close();
    cache = undefined;
  });

  afterAll(async () => {
    client?.disconnect();
    admin?.disconnect();
    await redis?.stop();
  });

  it('answers from the cache once read, and reads a key again at once when its notice comes', async () => {
    await start();
    source.set('a', 'a1').set('b', 'b1');
    expect(await cache!.get('a')).toEqual({ value: 'a1', source: 'read' });
    expect(await cache!.get('a')).toEqual({ value: 'a1', source: 'cache' });
    source.set('a', 'a2');
    // Not told yet: the cache still answers what it read.
    expect(await values(['a'])).toEqual(['a1']);
    await notify('a');
    expect(await cache!.get('a')).toEqual({ value: 'a2', source: 'read' });
    expect(await cache!.get('a')).toEqual({ value: 'a2', source: 'cache' });
    // A notice names one key: another's answer stays.
    expect(await cache!.get('b')).toEqual({ value: 'b1', source: 'read' });
    await notify('a');
    expect(await sources(['b', 'a'])).toEqual(['cache', 'read']);
    expect(reads).toEqual([['a'], ['a'], ['b'], ['a']]);
  });

  it('keeps out what a read under way when the notice came answers, though it answers its callers', async () => {
    await start();
    source.set('a', 'old');
    held = [];
    const during = cache!.get('a');
    // Wait until the read has reached the source (it goes after this turn), then change the source.
    while (held.length === 0) await new Promise((resolve) => setImmediate(resolve));
    source.set('a', 'new');
    await notify('a');
    held[0].answer();
    expect(await during).toEqual({ value: 'old', source: 'read' });
    held = undefined;
    expect(await cache!.get('a')).toEqual({ value: 'new', source: 'read' });
    expect(await cache!.get('a')).toEqual({ value: 'new', source: 'cache' });
  });

  it('reads every key missed in one turn in one read, each once, and lets lookups of a key being read wait for it', async () => {
    await start();
    source.set('a', 'a1').set('b', 'b1').set('c', 'c1');
    expect(await values(['a'])).toEqual(['a1']);
    held = [];
    const first = cache!.getMany(['a', 'b', 'c', 'b']);
    while (held.length === 0) await new Promise((resolve) => setImmediate(resolve));
    const joined = cache!.get('c');
    held[0].answer();
    expect((await first).map((each) => [each.value, each.source])).toEqual([
      ['a1', 'cache'],
      ['b1', 'read'],
      ['c1', 'read'],
      ['b1', 'read'],
    ]);
    expect(await joined).toEqual({ value: 'c1', source: 'read' });
    expect(reads).toEqual([['a'], ['b', 'c']]);
    expect(cache!.size).toBe(3);
  });

  it('keeps nothing for a key the source has nothing for: each lookup reads it again', async () => {
    await start();
    expect(await values(['nobody'])).toEqual([undefined]);
    source.set('nobody', 'now someone');
    expect(await cache!.get('nobody')).toEqual({ value: 'now someone', source: 'read' });
    expect(reads).toEqual([['nobody'], ['nobody']]);
  });

  it('reads a key again once its answer expires, and keeps only the most recently used keys', async () => {
    await start({ ttlMs: 1_000, maxEntries: 2 });
    source.set('a', 'a1').set('b', 'b1').set('c', 'c1');
    await values(['a', 'b']);
    clock = 999;
    expect(await sources(['a'])).toEqual(['cache']);
    clock = 1_000;
    expect(await sources(['b', 'a'])).toEqual(['read', 'read']);
    // b was used last: c pushes a out.
    clock = 1_500;
    expect(await sources(['b'])).toEqual(['cache']);
    await values(['c']);
    expect(cache!.size).toBe(2);
    expect(await sources(['b', 'c', 'a'])).toEqual(['cache', 'cache', 'read']);
  });

  it('does not let a read that a fresh one overtook put back the older answer', async () => {
    await start();
    source.set('a', 'old');
    held = [];
    const older = cache!.get('a');
    while (held.length === 0) await new Promise((resolve) => setImmediate(resolve));
    source.set('a', 'new');
    // As the relay asks when a send disagrees with its cached list.
    const fresh = cache!.get('a', true);
    while (held.length === 1) await new Promise((resolve) => setImmediate(resolve));
    held[1].answer();
    expect(await fresh).toEqual({ value: 'new', source: 'read' });
    held[0].answer();
    expect(await older).toEqual({ value: 'old', source: 'read' });
    held = undefined;
    expect(await cache!.get('a')).toEqual({ value: 'new', source: 'cache' });
    expect(reads).toEqual([['a'], ['a']]);
  });

  it('ignores a notice it cannot decode and goes on hearing the next', async () => {
    await start();
    source.set('a', 'a1');
    await values(['a']);
    await publish(admin, CHANNEL, 'undecodable');
    await notify('a');
    expect(await sources(['a'])).toEqual(['read']);
  });

  it('with a time to live of 0 subscribes to nothing and reads the source for every lookup', async () => {
    await start({ ttlMs: 0 });
    source.set('a', 'a1');
    for (let i = 0; i < 3; i++) expect(await cache!.get('a')).toEqual({ value: 'a1', source: 'read' });
    expect(reads).toEqual([['a'], ['a'], ['a']]);
    expect(cache!.size).toBe(0);
    expect(await redisClientNamed(admin, subscriber)).toBeUndefined();
  });

  it('reads the source for every lookup while the channel is down, and starts empty once it is back', async () => {
    await start();
    source.set('a', 'a1').set('b', 'b1');
    await values(['a', 'b']);
    expect(await sources(['a', 'b'])).toEqual(['cache', 'cache']);
    const subscribed = await redisClientNamed(admin, subscriber);
    expect(subscribed?.channels).toBe(1);

    // Redis takes channel rights away, which drops the subscriber; it comes back, refused.
    await admin.call('ACL', 'SETUSER', 'default', 'resetchannels');
    try {
      let refused = await redisClientNamed(admin, subscriber);
      while (refused === undefined || refused.id === subscribed?.id) {
        refused = await redisClientNamed(admin, subscriber);
      }
      // A change nobody hears of.
      source.set('a', 'a2');
      reads = [];
      for (let i = 0; i < 2; i++) expect(await values(['a', 'b'])).toEqual(['a2', 'b1']);
      expect(reads).toEqual([
        ['a', 'b'],
        ['a', 'b'],
      ]);
      expect(cache!.size).toBe(0);

      // Back: what was read before is not trusted, and the cache keeps answers again.
      await admin.call('ACL', 'SETUSER', 'default', 'allchannels');
      let back = await redisClientNamed(admin, subscriber);
      while (back?.channels !== 1) back = await redisClientNamed(admin, subscriber);
      // A notice heard means the subscription holds, as far as the cache knows too.
      await notify('c');
      source.set('b', 'b2');
      expect(await values(['a', 'b'])).toEqual(['a2', 'b2']);
      expect(await sources(['a', 'b'])).toEqual(['cache', 'cache']);
      await notify('a');
      expect(await sources(['a', 'b'])).toEqual(['read', 'cache']);
    } finally {
      await admin.call('ACL', 'SETUSER', 'default', 'allchannels');
    }
  });

  it('serves nothing from the cache before it starts', async () => {
    const unstarted = new InvalidatedCache<string>(client, {
      what: 'spec',
      channel: CHANNEL,
      subscriber: `${NAME}-unstarted`,
      ttlMs: 60_000,
      maxEntries: 100,
      keyOf: (notice) => notice.toString(),
      read: (keys) => {
        reads.push(keys);
        return Promise.resolve(keys.map(() => 'v'));
      },
    });
    expect(await unstarted.get('a')).toEqual({ value: 'v', source: 'read' });
    expect(await unstarted.get('a')).toEqual({ value: 'v', source: 'read' });
    expect(unstarted.size).toBe(0);
  });
});
