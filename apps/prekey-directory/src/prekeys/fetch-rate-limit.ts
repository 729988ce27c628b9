import { Inject, Injectable } from '@nestjs/common';
import { throttled } from '@sotto/platform/grpc';
import type { AccountId } from '@sotto/platform/ids';
import { RateLimiter } from '@sotto/platform/redis';

export const FETCH_LIMIT = Symbol('FETCH_LIMIT');

export interface FetchLimit {
  readonly fetches: number;
  readonly windowSeconds: number;
}

/**
 * Bundle fetches per requester and target in a fixed window, so no one can
 * drain another account's one-time keys. Kept in Redis: every replica shares it.
 */
@Injectable()
export class FetchRateLimit {
  constructor(
    private readonly limiter: RateLimiter,
    @Inject(FETCH_LIMIT) private readonly limit: FetchLimit,
  ) {}

  /** Counts one fetch; throws RESOURCE_EXHAUSTED with a retry delay when over the limit. */
  async hit(requester: AccountId, target: AccountId): Promise<void> {
    // The target in braces: on Redis Cluster, one target's counters share a slot.
    const result = await this.limiter.hit(`sotto:ratelimit:bundle:{${target}}:${requester}`, {
      limit: this.limit.fetches,
      windowMs: this.limit.windowSeconds * 1000,
    });
    if (!result.allowed) throw throttled('too many prekey fetches for this account', result.retryAfterMs);
  }
}
