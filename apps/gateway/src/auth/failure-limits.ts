import { Inject, Injectable } from '@nestjs/common';
import { throttled } from '@sotto/platform/grpc';
import { RateLimiter } from '@sotto/platform/redis';
import type { AuthenticatedDevice } from './credential-cache';

export const FAILURE_LIMITS = Symbol('FAILURE_LIMITS');

export interface FailureLimits {
  readonly perSource: number;
  readonly perDevice: number;
  readonly windowSeconds: number;
}

/** An authentication under way; it counts as failed unless told it succeeded. */
export interface PendingAuthentication {
  /** Takes the attempt back off every counter: successes are not counted. */
  succeeded(): Promise<void>;
  /** The attempt never reached a verdict (the directory did not answer): not counted either. */
  abandoned(): Promise<void>;
}

/**
 * Failed authentications, counted in Redis (shared by every gateway) per
 * source address and per device, in fixed windows. An attempt is counted
 * before the directory is asked and taken back if it succeeds, so attempts
 * in flight at once hold their places under the limit and a flood cannot
 * slip past it by arriving all together.
 *
 * - Per source: past `perSource` failures in a window, an address is refused
 *   every authentication the gateway has not already cached, without asking
 *   the directory. Successes never reset the count, or an attacker could
 *   interleave their own account's credential to keep guessing.
 * - Per device: past `perDevice` failures of one device in a window (a spray
 *   from many addresses), each address gets one more try of that device in
 *   the window. A spray can therefore not lock the device's owner out: the
 *   owner's own address has not failed, and a success is taken back.
 */
@Injectable()
export class AuthFailureLimits {
  constructor(
    private readonly limiter: RateLimiter,
    @Inject(FAILURE_LIMITS) private readonly limits: FailureLimits,
  ) {}

  /** Counts an attempt from `source` at `device`; throws RESOURCE_EXHAUSTED when over a limit. */
  async begin(source: string, device: AuthenticatedDevice): Promise<PendingAuthentication> {
    const windowMs = this.limits.windowSeconds * 1000;
    // Keys carry their subject in braces: on Redis Cluster, one subject's counters share a slot.
    const sourceKey = `sotto:ratelimit:auth-failures:source:{${source}}`;
    const bySource = await this.limiter.hit(sourceKey, { limit: this.limits.perSource, windowMs });
    if (!bySource.allowed) {
      throw throttled(
        'authorization: too many failed authentications from this address',
        bySource.retryAfterMs,
      );
    }
    const subject = `${device.accountId}.${device.deviceId}`;
    const deviceKey = `sotto:ratelimit:auth-failures:device:{${subject}}`;
    const counted = [sourceKey, deviceKey];
    const byDevice = await this.limiter.hit(deviceKey, { limit: this.limits.perDevice, windowMs });
    if (!byDevice.allowed) {
      const pairKey = `sotto:ratelimit:auth-failures:device:{${subject}}:source:${source}`;
      const byPair = await this.limiter.hit(pairKey, { limit: 1, windowMs });
      if (!byPair.allowed) {
        throw throttled(
          'authorization: too many failed authentications for this device',
          byDevice.retryAfterMs,
        );
      }
      counted.push(pairKey);
    }
    const takeBack = async (): Promise<void> => {
      await Promise.all(counted.map((key) => this.limiter.refund(key)));
    };
    return { succeeded: takeBack, abandoned: takeBack };
  }
}
