import { Inject, Injectable } from '@nestjs/common';
import type { AccountId, DeviceId } from '@sotto/platform/ids';
import { RateLimiter, type RateLimit } from '@sotto/platform/redis';

export const ONE_TIME_KEY_BUDGET = Symbol('ONE_TIME_KEY_BUDGET');

/** A claim of one device's one-time keys, allowed by its budget; given back if nothing was there to claim. */
export interface OneTimeKeyGrant {
  release(): Promise<void>;
}

/**
 * How many one-time prekeys a device hands out, to all requesters together:
 * a token bucket per device in Redis, shared by every replica. The
 * per-requester fetch limit stops one requester; this stops a crowd of them
 * (many throwaway accounts) from draining a device. A token is taken before
 * the keys are claimed, so claims on any number of replicas at once never
 * hand out more than the budget.
 */
@Injectable()
export class OneTimeKeyBudget {
  constructor(
    private readonly limiter: RateLimiter,
    @Inject(ONE_TIME_KEY_BUDGET) private readonly budget: RateLimit,
  ) {}

  /** A grant to claim one key of each kind for this device, or undefined when its budget is spent. */
  async take(accountId: AccountId, deviceId: DeviceId): Promise<OneTimeKeyGrant | undefined> {
    const subject = `${accountId}:${deviceId}`;
    const taken = await this.limiter.take('one_time_prekeys_per_device', subject, this.budget);
    if (!taken.allowed) return undefined;
    return { release: () => this.limiter.refund('one_time_prekeys_per_device', subject, this.budget) };
  }
}
