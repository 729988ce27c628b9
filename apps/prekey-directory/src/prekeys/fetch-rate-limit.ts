import { Inject, Injectable } from '@nestjs/common';
import { Metadata, status } from '@grpc/grpc-js';
import { grpcError } from '@sotto/platform/grpc';
import type { AccountId } from '@sotto/platform/ids';
import { REDIS, type Redis } from '@sotto/platform/redis';

export const FETCH_LIMIT = Symbol('FETCH_LIMIT');

export interface FetchLimit {
  readonly fetches: number;
  readonly windowSeconds: number;
}

// Count and expiry in one step, so concurrent fetches can never skip the limit.
const HIT = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('PTTL', KEYS[1])}
`;

/**
 * Bundle fetches per requester and target in a fixed window, so no one can
 * drain another account's one-time keys. Kept in Redis: every replica shares it.
 */
@Injectable()
export class FetchRateLimit {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(FETCH_LIMIT) private readonly limit: FetchLimit,
  ) {}

  /** Counts one fetch; throws RESOURCE_EXHAUSTED with a retry delay when over the limit. */
  async hit(requester: AccountId, target: AccountId): Promise<void> {
    // The target in braces: on Redis Cluster, one target's counters share a slot.
    const key = `sotto:ratelimit:bundle:{${target}}:${requester}`;
    const [count, ttlMs] = (await this.redis.eval(HIT, 1, key, this.limit.windowSeconds * 1000)) as [
      number,
      number,
    ];
    if (count > this.limit.fetches) {
      const retryAfterMs = Math.max(ttlMs, 0);
      const metadata = new Metadata();
      metadata.set('retry-after-ms', String(retryAfterMs));
      throw grpcError(
        status.RESOURCE_EXHAUSTED,
        `too many prekey fetches for this account; retry in ${Math.ceil(retryAfterMs / 1000)} s`,
        metadata,
      );
    }
  }
}
