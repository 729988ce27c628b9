import { Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { REDIS } from './redis.module';

/** So many hits per key in a fixed window that starts with the key's first hit. */
export interface RateLimit {
  readonly limit: number;
  readonly windowMs: number;
}

export type RateLimitResult =
  | { readonly allowed: true }
  /** Over the limit until the window ends, in `retryAfterMs`. */
  | { readonly allowed: false; readonly retryAfterMs: number };

// Count and expiry in one step, so concurrent hits can never skip the limit,
// and a counter always expires: one left without a TTL gets the window's.
const HIT = `
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  ttl = tonumber(ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return {count, ttl}
`;

// Takes one hit back, never below zero; the window's end stays where it is.
const REFUND = `
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count <= 0 then return 0 end
return redis.call('DECR', KEYS[1])
`;

/**
 * Fixed-window counters in Redis, shared by every replica. The caller owns the
 * key and what it means; on Redis Cluster it should carry a hash tag.
 */
@Injectable()
export class RateLimiter {
  constructor(@Inject(REDIS) private readonly redis: Redis) {}

  /** Counts one hit, allowed or not; over the limit, says how long until the window ends. */
  async hit(key: string, { limit, windowMs }: RateLimit): Promise<RateLimitResult> {
    const [count, ttlMs] = (await this.redis.eval(HIT, 1, key, windowMs)) as [number, number];
    return count <= limit ? { allowed: true } : { allowed: false, retryAfterMs: ttlMs };
  }

  /**
   * Takes back one hit of the current window, for a caller that counts an
   * attempt before it knows whether it should (so that attempts in flight at
   * once hold their places under the limit) and learns it should not. A
   * window that ended in between is left alone: its counter is gone, or it
   * is a new window that did not count the hit.
   */
  async refund(key: string): Promise<void> {
    await this.redis.eval(REFUND, 1, key);
  }
}
