import { randomUUID } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { DependencyUnavailableError } from '@sotto/platform/grpc';
import { testRedis } from '@sotto/testing';
import { RateLimiter, type RateLimit } from './index';

describe('RateLimiter (token buckets in Redis)', () => {
  let redis: Redis;
  let now: number;
  let limiter: RateLimiter;
  let registry: Registry;
  let subject: string;
  const clock = (): number => now;
  const key = (name = 'test'): string => `sotto:bucket:${name}:{${subject}}`;

  beforeAll(() => {
    redis = testRedis();
  });

  afterAll(() => redis.quit());

  beforeEach(() => {
    now = 1_700_000_000_000;
    registry = new Registry();
    limiter = new RateLimiter(redis, { clock, registry });
    subject = randomUUID();
  });

  const takes = (n: number, limit: RateLimit, on = limiter) =>
    Promise.all(Array.from({ length: n }, () => on.take('test', subject, limit)));

  it('lets the whole burst through at once, then refuses with the time until the next token', async () => {
    const limit = { burst: 3, periodMs: 60_000 };
    expect(await takes(3, limit)).toEqual(Array(3).fill({ allowed: true }));
    // One token comes back every 60 000 / 3 ms.
    expect(await limiter.take('test', subject, limit)).toEqual({ allowed: false, retryAfterMs: 20_000 });
    now += 5_000;
    expect(await limiter.take('test', subject, limit)).toEqual({ allowed: false, retryAfterMs: 15_000 });
  });

  it('refills by the time elapsed, one token per period / burst, never past the burst', async () => {
    const limit = { burst: 4, periodMs: 4_000 };
    await takes(4, limit);
    now += 999;
    expect((await limiter.take('test', subject, limit)).allowed).toBe(false);
    now += 1;
    expect(await limiter.take('test', subject, limit)).toEqual({ allowed: true });
    expect((await limiter.take('test', subject, limit)).allowed).toBe(false);
    // Idle for ten periods, the bucket holds its burst and no more.
    now += 40_000;
    expect(await takes(4, limit)).toEqual(Array(4).fill({ allowed: true }));
    expect((await limiter.take('test', subject, limit)).allowed).toBe(false);
  });

  it('takes several tokens at once, or none, and says when there will be enough', async () => {
    const limit = { burst: 10, periodMs: 10_000 };
    expect(await limiter.take('test', subject, limit, 7)).toEqual({ allowed: true });
    expect(await limiter.take('test', subject, limit, 4)).toEqual({ allowed: false, retryAfterMs: 1_000 });
    // The refused take spent nothing: three are still there.
    expect(await limiter.take('test', subject, limit, 3)).toEqual({ allowed: true });
    await expect(limiter.take('test', subject, limit, 11)).rejects.toThrow('cannot take 11 tokens of 10');
  });

  it('never lets concurrent takers, on several connections, spend more than the bucket', async () => {
    const others = [testRedis(), testRedis()];
    try {
      const limiters = [limiter, ...others.map((connection) => new RateLimiter(connection, { clock }))];
      const limit = { burst: 7, periodMs: 3_600_000 };
      const results = (await Promise.all(limiters.map((each) => takes(40, limit, each)))).flat();
      expect(results.filter((result) => result.allowed)).toHaveLength(7);
      expect(results).toHaveLength(120);
    } finally {
      await Promise.all(others.map((connection) => connection.quit()));
    }
  });

  it('with the real clock, lets a script through at the refill rate and no faster', async () => {
    const real = new RateLimiter(redis);
    const limit = { burst: 5, periodMs: 500 };
    const started = Date.now();
    let allowed = 0;
    let last = started;
    // Back to back for 600 ms: the burst, then one token per 100 ms.
    while (Date.now() - started < 600) {
      last = Date.now();
      if ((await real.take('test', subject, limit)).allowed) allowed += 1;
    }
    const refilled = (last - started) / 100;
    expect(allowed).toBeLessThanOrEqual(5 + Math.ceil(refilled) + 1);
    expect(allowed).toBeGreaterThanOrEqual(5 + Math.floor(refilled) - 1);
    expect(allowed).toBeGreaterThan(5);
  });

  it('expires a bucket when it would be full again, and keeps no bucket that is full', async () => {
    const limit = { burst: 4, periodMs: 400 };
    await takes(2, limit, new RateLimiter(redis));
    const ttl = await redis.pttl(key());
    expect(ttl).toBeGreaterThan(100);
    expect(ttl).toBeLessThanOrEqual(200);
    // Waiting for Redis to expire the key is the behaviour under test; it is 200 ms away.
    const deadline = Date.now() + 5_000;
    while ((await redis.exists(key())) === 1) {
      if (Date.now() > deadline) throw new Error('the bucket did not expire');
      await delay(20);
    }
    expect(await takes(4, limit, new RateLimiter(redis))).toEqual(Array(4).fill({ allowed: true }));

    // Given back in full, a bucket is full and is deleted at once.
    subject = randomUUID();
    await limiter.take('test', subject, { burst: 2, periodMs: 3_600_000 });
    expect(await redis.exists(key())).toBe(1);
    await limiter.refund('test', subject, { burst: 2, periodMs: 3_600_000 });
    expect(await redis.exists(key())).toBe(0);
  });

  it('gives tokens back on refund, never filling the bucket past its burst', async () => {
    const limit = { burst: 2, periodMs: 3_600_000 };
    await takes(2, limit);
    await limiter.refund('test', subject, limit);
    expect(await limiter.take('test', subject, limit)).toEqual({ allowed: true });
    expect((await limiter.take('test', subject, limit)).allowed).toBe(false);
    for (let i = 0; i < 5; i++) await limiter.refund('test', subject, limit);
    expect(await takes(3, limit)).toEqual([
      { allowed: true },
      { allowed: true },
      expect.objectContaining({ allowed: false }),
    ]);
  });

  it('refills nothing for a clock that is behind the one that last wrote the bucket', async () => {
    const limit = { burst: 2, periodMs: 2_000 };
    await takes(2, limit);
    now -= 60_000;
    expect((await limiter.take('test', subject, limit)).allowed).toBe(false);
    now += 60_000 + 999;
    expect((await limiter.take('test', subject, limit)).allowed).toBe(false);
    now += 1;
    expect((await limiter.take('test', subject, limit)).allowed).toBe(true);
  });

  it('keeps each limit and each subject in a bucket of its own', async () => {
    const limit = { burst: 1, periodMs: 60_000 };
    expect(await limiter.take('test', subject, limit)).toEqual({ allowed: true });
    expect(await limiter.take('other', subject, limit)).toEqual({ allowed: true });
    expect(await limiter.take('test', `${subject}-2`, limit)).toEqual({ allowed: true });
    expect((await limiter.take('test', subject, limit)).allowed).toBe(false);
  });

  it('counts every refusal by limit name, and nothing else', async () => {
    const limit = { burst: 1, periodMs: 60_000 };
    await limiter.take('send_per_device', subject, limit);
    await limiter.take('send_per_device', subject, limit);
    await limiter.take('send_per_device', subject, limit);
    await limiter.take('connect_per_device', subject, limit);
    const text = await registry.metrics();
    expect(text).toContain('sotto_rate_limit_hits_total{limit="send_per_device"} 2');
    expect(text).not.toContain('limit="connect_per_device"');
    expect(text).not.toContain(subject);
    // A second limiter on the same registry shares the counter.
    expect(() => new RateLimiter(redis, { registry })).not.toThrow();
  });

  it('allows everything and writes nothing when turned off', async () => {
    const off = new RateLimiter(redis, { enabled: false, clock, registry });
    const limit = { burst: 1, periodMs: 3_600_000 };
    expect(await takes(50, limit, off)).toEqual(Array(50).fill({ allowed: true }));
    await off.refund('test', subject, limit);
    expect(await redis.exists(key())).toBe(0);
    expect(await registry.metrics()).not.toContain('limit="test"');
  });
});

describe('RateLimiter without Redis', () => {
  const limit = { burst: 10, periodMs: 60_000 };
  const clients: Redis[] = [];
  let silent: Server;
  const held: Socket[] = [];

  beforeAll(async () => {
    // A server that takes connections and never answers: Redis stopped (SIGSTOP), or a black hole.
    silent = createServer((socket) => void held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  });

  afterAll(async () => {
    for (const client of clients) client.disconnect();
    for (const socket of held) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  });

  const clientOf = (url: string): Redis => {
    const client = new Redis(url, { maxRetriesPerRequest: 3 });
    client.on('error', () => undefined);
    clients.push(client);
    return client;
  };

  it('refuses a take, and a refund, as unavailable when Redis does not answer in time, never admitting it', async () => {
    const { port } = silent.address() as AddressInfo;
    const limiter = new RateLimiter(clientOf(`redis://127.0.0.1:${port}`), { timeoutMs: 200 });
    const started = Date.now();
    const refused = await limiter.take('test', randomUUID(), limit).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(DependencyUnavailableError);
    expect((refused as Error).message).toBe(
      'rate limits are unavailable (Redis did not answer within 200 ms); try again',
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    await expect(limiter.refund('test', randomUUID(), limit)).rejects.toBeInstanceOf(
      DependencyUnavailableError,
    );
  });

  it('refuses at once, without queueing, once the connection to Redis is lost', async () => {
    const redis = testRedis();
    clients.push(redis);
    const limiter = new RateLimiter(redis, { timeoutMs: 60_000 });
    expect(await limiter.take('test', randomUUID(), limit)).toEqual({ allowed: true });
    // The server drops the client's connection, and ioredis sets about reconnecting.
    const killer = testRedis();
    clients.push(killer);
    const reconnecting = new Promise<void>((resolve) => redis.once('reconnecting', () => resolve()));
    await killer.client('KILL', 'ID', String(await redis.client('ID')));
    await reconnecting;
    const refused = await limiter.take('test', randomUUID(), limit).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(DependencyUnavailableError);
    expect((refused as Error).message).toBe(
      'rate limits are unavailable (Redis is not connected (reconnecting)); try again',
    );
    // And once it is back, takes are answered again.
    await new Promise<void>((resolve) => redis.once('ready', () => resolve()));
    expect(await limiter.take('test', randomUUID(), limit)).toEqual({ allowed: true });
  });
});
