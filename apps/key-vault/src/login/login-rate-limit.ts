import { Inject, Injectable } from '@nestjs/common';
import { Metadata, status } from '@grpc/grpc-js';
import { grpcError } from '@sotto/platform/grpc';
import type { AccountId } from '@sotto/platform/ids';
import { REDIS, type Redis } from '@sotto/platform/redis';

export const LOGIN_LIMITS = Symbol('LOGIN_LIMITS');

export interface LoginLimits {
  readonly perAccount: number;
  readonly perSource: number;
  readonly windowSeconds: number;
}

// Count and expiry in one step, so concurrent logins can never skip the limit.
const HIT = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('PTTL', KEYS[1])}
`;

/**
 * Logins started per account and per source address in a fixed window. The
 * guess limit caps what any attacker gets; this slows them down, and keeps one
 * source from burning many accounts' tries. In Redis: every replica shares it.
 */
@Injectable()
export class LoginRateLimit {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(LOGIN_LIMITS) private readonly limits: LoginLimits,
  ) {}

  /** Counts one login; throws RESOURCE_EXHAUSTED with a retry delay when over either limit. */
  async hit(accountId: AccountId, source: string): Promise<void> {
    // Source first: a flood from one address then does not also spend the account's allowance.
    await this.check(
      `sotto:ratelimit:vault-login:source:{${source}}`,
      this.limits.perSource,
      'from this address',
    );
    await this.check(
      `sotto:ratelimit:vault-login:account:{${accountId}}`,
      this.limits.perAccount,
      'for this account',
    );
  }

  private async check(key: string, limit: number, scope: string): Promise<void> {
    const [count, ttlMs] = (await this.redis.eval(HIT, 1, key, this.limits.windowSeconds * 1000)) as [
      number,
      number,
    ];
    if (count > limit) {
      const retryAfterMs = Math.max(ttlMs, 0);
      const metadata = new Metadata();
      metadata.set('retry-after-ms', String(retryAfterMs));
      throw grpcError(
        status.RESOURCE_EXHAUSTED,
        `too many vault logins ${scope}; retry in ${Math.ceil(retryAfterMs / 1000)} s`,
        metadata,
      );
    }
  }
}
