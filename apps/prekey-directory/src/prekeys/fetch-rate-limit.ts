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
 * Bundle fetches per requester and target: `fetches` at once, and as many
 * again per window (a token bucket), so no one requester can drain another
 * account's one-time keys. Kept in Redis: every replica shares it.
 */
@Injectable()
export class FetchRateLimit {
  constructor(
    private readonly limiter: RateLimiter,
    @Inject(FETCH_LIMIT) private readonly limit: FetchLimit,
  ) {}

  /** Counts one fetch; throws RESOURCE_EXHAUSTED with a retry delay when over the limit. */
  async hit(requester: AccountId, target: AccountId): Promise<void> {
    const result = await this.limiter.take(
      'prekey_fetches_per_requester_and_target',
      `${target}:${requester}`,
      {
        burst: this.limit.fetches,
        periodMs: this.limit.windowSeconds * 1000,
      },
    );
    if (!result.allowed) throw throttled('too many prekey fetches for this account', result.retryAfterMs);
  }
}
