import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { testRedis } from '@sotto/testing';
import { RateLimiter } from './index';

describe('RateLimiter', () => {
  let redis: Redis;
  let limiter: RateLimiter;
  let key: string;

  beforeAll(() => {
    redis = testRedis();
    limiter = new RateLimiter(redis);
  });

  afterAll(() => redis.quit());

  beforeEach(() => {
    key = `test:ratelimit:{${randomUUID()}}`;
  });

  const hits = (n: number, limit: { limit: number; windowMs: number }) =>
    Promise.all(Array.from({ length: n }, () => limiter.hit(key, limit)));

  it('allows the limit in a window, then refuses with the time until the window ends', async () => {
    const window = { limit: 3, windowMs: 60_000 };
    expect(await hits(3, window)).toEqual([{ allowed: true }, { allowed: true }, { allowed: true }]);
    const refused = await limiter.hit(key, window);
    expect(refused).toEqual({ allowed: false, retryAfterMs: expect.any(Number) });
    const { retryAfterMs } = refused as { retryAfterMs: number };
    expect(retryAfterMs).toBeGreaterThan(59_000);
    expect(retryAfterMs).toBeLessThanOrEqual(60_000);
    // Refused hits count too, and do not push the window's end back.
    const later = (await limiter.hit(key, window)) as { retryAfterMs: number };
    expect(later.retryAfterMs).toBeLessThanOrEqual(retryAfterMs);
    expect(await redis.get(key)).toBe('5');
  });

  it('never lets more than the limit through, however many hit at once', async () => {
    const results = await hits(50, { limit: 7, windowMs: 60_000 });
    expect(results.filter((result) => result.allowed)).toHaveLength(7);
  });

  it('allows again once the delay it gave has passed', async () => {
    const window = { limit: 1, windowMs: 200 };
    expect(await limiter.hit(key, window)).toEqual({ allowed: true });
    const refused = (await limiter.hit(key, window)) as { allowed: false; retryAfterMs: number };
    expect(refused.allowed).toBe(false);
    // Waiting out the delay is the behaviour under test; the window is short.
    await new Promise((resolve) => setTimeout(resolve, refused.retryAfterMs + 20));
    expect(await limiter.hit(key, window)).toEqual({ allowed: true });
  });

  it('counts each key on its own', async () => {
    const window = { limit: 1, windowMs: 60_000 };
    expect(await limiter.hit(key, window)).toEqual({ allowed: true });
    expect(await limiter.hit(`${key}:other`, window)).toEqual({ allowed: true });
    expect((await limiter.hit(key, window)).allowed).toBe(false);
  });

  it('gives a counter left without an expiry one, rather than refusing for ever', async () => {
    await redis.set(key, '100');
    const refused = (await limiter.hit(key, { limit: 5, windowMs: 30_000 })) as { retryAfterMs: number };
    expect(refused).toEqual({ allowed: false, retryAfterMs: 30_000 });
    expect(await redis.pttl(key)).toBeGreaterThan(0);
  });

  it('takes a hit back on refund, so a place under the limit frees up, never going below zero', async () => {
    const window = { limit: 2, windowMs: 60_000 };
    expect(await hits(2, window)).toEqual([{ allowed: true }, { allowed: true }]);
    await limiter.refund(key);
    expect(await limiter.hit(key, window)).toEqual({ allowed: true });
    expect((await limiter.hit(key, window)).allowed).toBe(false);
    const ttl = await redis.pttl(key);
    for (let i = 0; i < 5; i++) await limiter.refund(key);
    expect(await redis.get(key)).toBe('0');
    expect(await redis.pttl(key)).toBeLessThanOrEqual(ttl);
    expect(await redis.pttl(key)).toBeGreaterThan(0);
  });

  it('leaves a window that ended alone on refund', async () => {
    await limiter.refund(key);
    expect(await redis.exists(key)).toBe(0);
  });
});
