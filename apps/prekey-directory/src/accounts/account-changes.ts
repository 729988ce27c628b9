import { Inject, Injectable, Logger } from '@nestjs/common';
import { deviceListChanges } from '@sotto/contracts';
import { publish, REDIS, type Redis } from '@sotto/platform/redis';
import type { AccountId } from '@sotto/platform/ids';

/**
 * Tells the relays, over Redis pub/sub (sharded on a Redis Cluster), that an account's device list
 * changed, so that none keeps checking sends against its cached copy.
 */
@Injectable()
export class DeviceListChanges {
  private readonly logger = new Logger(DeviceListChanges.name);

  constructor(@Inject(REDIS) private readonly redis: Redis) {}

  /**
   * Call once the change is committed. A message that cannot be published is
   * logged; relays then see the new list when their cached copy expires
   * (DEVICE_LIST_CACHE_TTL_MS), and a send that disagrees with a cached list
   * is always checked again against the directory.
   */
  async changed(accountId: AccountId): Promise<void> {
    try {
      await publish(this.redis, deviceListChanges.CHANNEL, deviceListChanges.encode({ accountId }));
    } catch (error) {
      this.logger.error(
        `could not tell relays that the devices of ${accountId} changed: ${(error as Error).message}`,
      );
    }
  }
}
