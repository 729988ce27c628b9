import { Inject, Injectable } from '@nestjs/common';
import { throttled } from '@sotto/platform/grpc';
import { RateLimiter, type RateLimit } from '@sotto/platform/redis';
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
 * source address and per device, in token buckets: `perSource` failures at
 * once and as many again per window, and so for `perDevice`. An attempt takes
 * its tokens before the directory is asked and gives them back if it
 * succeeds, so attempts in flight at once hold their places under the limit
 * and a flood cannot slip past it by arriving all together.
 *
 * - Per source: once an address has no tokens left, it is refused every
 *   authentication the gateway has not already cached, without asking the
 *   directory, until a token is back. Successes never refill the bucket, or
 *   an attacker could interleave their own account's credential to keep
 *   guessing.
 * - Per device: once a device has no tokens left (a spray from many
 *   addresses), each address gets one more try of that device per window. A
 *   spray can therefore not lock the device's owner out: the owner's own
 *   address has not failed, and a success is given back.
 */
@Injectable()
export class AuthFailureLimits {
  constructor(
    private readonly limiter: RateLimiter,
    @Inject(FAILURE_LIMITS) private readonly limits: FailureLimits,
  ) {}

  /** Counts an attempt from `source` at `device`; throws RESOURCE_EXHAUSTED when over a limit. */
  async begin(source: string, device: AuthenticatedDevice): Promise<PendingAuthentication> {
    const periodMs = this.limits.windowSeconds * 1000;
    const bySource = { burst: this.limits.perSource, periodMs };
    const fromSource = await this.limiter.take('auth_failures_per_source', source, bySource);
    if (!fromSource.allowed) {
      throw throttled(
        'authorization: too many failed authentications from this address',
        fromSource.retryAfterMs,
      );
    }
    const subject = `${device.accountId}.${device.deviceId}`;
    const byDevice = { burst: this.limits.perDevice, periodMs };
    const taken: [name: string, subject: string, limit: RateLimit][] = [
      ['auth_failures_per_source', source, bySource],
    ];
    const ofDevice = await this.limiter.take('auth_failures_per_device', subject, byDevice);
    if (ofDevice.allowed) {
      taken.push(['auth_failures_per_device', subject, byDevice]);
    } else {
      const byPair = { burst: 1, periodMs };
      const pair = `${subject}:${source}`;
      const fromPair = await this.limiter.take('auth_failures_per_device_and_source', pair, byPair);
      if (!fromPair.allowed) {
        throw throttled(
          'authorization: too many failed authentications for this device',
          Math.min(ofDevice.retryAfterMs, fromPair.retryAfterMs),
        );
      }
      taken.push(['auth_failures_per_device_and_source', pair, byPair]);
    }
    const giveBack = async (): Promise<void> => {
      await Promise.all(taken.map(([name, key, limit]) => this.limiter.refund(name, key, limit)));
    };
    return { succeeded: giveBack, abandoned: giveBack };
  }
}
