import { Inject, Injectable } from '@nestjs/common';
import { throttled } from '@sotto/platform/grpc';
import type { AccountId } from '@sotto/platform/ids';
import { RateLimiter } from '@sotto/platform/redis';

export const LOGIN_LIMITS = Symbol('LOGIN_LIMITS');

export interface LoginLimits {
  readonly perAccount: number;
  readonly perSource: number;
  readonly windowSeconds: number;
}

/**
 * Logins started per account and per source address: as many at once as the
 * limit, and as many again per window (token buckets). The guess limit caps
 * what any attacker gets; this slows them down, and keeps one source from
 * burning many accounts' tries. In Redis: every replica shares it.
 */
@Injectable()
export class LoginRateLimit {
  constructor(
    private readonly limiter: RateLimiter,
    @Inject(LOGIN_LIMITS) private readonly limits: LoginLimits,
  ) {}

  /**
   * Counts one login from this source; throws RESOURCE_EXHAUSTED with a retry
   * delay when over the limit. Hit first: a flood from one address then does
   * not also spend the account's allowance.
   */
  async hitSource(source: string): Promise<void> {
    await this.check('vault_logins_per_source', source, this.limits.perSource, 'from this address');
  }

  /** Counts one login for this account; throws RESOURCE_EXHAUSTED with a retry delay when over the limit. */
  async hitAccount(accountId: AccountId): Promise<void> {
    await this.check('vault_logins_per_account', accountId, this.limits.perAccount, 'for this account');
  }

  private async check(name: string, subject: string, burst: number, scope: string): Promise<void> {
    const result = await this.limiter.take(name, subject, {
      burst,
      periodMs: this.limits.windowSeconds * 1000,
    });
    if (!result.allowed) throw throttled(`too many vault logins ${scope}`, result.retryAfterMs);
  }
}
