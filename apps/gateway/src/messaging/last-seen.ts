import { Injectable, Logger } from '@nestjs/common';
import type { AuthenticatedDevice } from '../auth/authenticator';
import { Upstream } from '../upstream/upstream';

/** Devices remembered as seen today; past it, the oldest half is forgotten (a write more for them, no more). */
const MAX_REMEMBERED = 100_000;

const today = (): string => new Date().toISOString().slice(0, 10);

/**
 * Records the day (UTC) a device opened its delivery stream, for ListDevices:
 * at most one directory write per device per day from this gateway. Kept to
 * the day, as a courtesy to privacy.
 */
@Injectable()
export class LastSeen {
  private readonly logger = new Logger(LastSeen.name);
  /** Device → the day last recorded. */
  private readonly recorded = new Map<string, string>();

  constructor(private readonly upstream: Upstream) {}

  /** Records the device as seen today, unless this gateway already did; never rejects. */
  async seen(device: AuthenticatedDevice): Promise<void> {
    const key = `${device.accountId}.${device.deviceId}`;
    const day = today();
    if (this.recorded.get(key) === day) return;
    if (this.recorded.size >= MAX_REMEMBERED) this.forgetOldest();
    this.recorded.delete(key);
    this.recorded.set(key, day);
    try {
      await this.upstream.directory.recordLastSeen({
        accountId: device.accountId,
        deviceId: device.deviceId,
      });
    } catch (error) {
      // Tried again at the device's next connection; the stream opens all the same.
      this.recorded.delete(key);
      this.logger.warn(
        `could not record that a device was seen: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }

  private forgetOldest(): void {
    let forget = this.recorded.size / 2;
    for (const key of this.recorded.keys()) {
      if (forget-- <= 0) break;
      this.recorded.delete(key);
    }
  }
}
