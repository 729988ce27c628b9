import { Inject, Injectable, Logger } from '@nestjs/common';
import { deviceListChanges, unidentifiedAccessChanges } from '@sotto/contracts';
import { publish, REDIS, type Redis } from '@sotto/platform/redis';
import type { AccountId } from '@sotto/platform/ids';

/** A channel of notices that name one account, as the contracts lib defines each. */
interface AccountChannel {
  readonly CHANNEL: string;
  encode(event: { accountId: string }): Buffer;
}

/**
 * Tells the services that cache something of an account, over Redis pub/sub
 * (sharded on a Redis Cluster), that it changed, so that none keeps answering
 * from its cached copy. One publisher per channel; each says what changed.
 */
abstract class AccountChanges {
  private readonly logger = new Logger(this.constructor.name);

  protected constructor(
    private readonly redis: Redis,
    private readonly channel: AccountChannel,
    /** Who listens and what they cache, for the log line: "relays", "the devices". */
    private readonly listeners: string,
    private readonly what: string,
  ) {}

  /**
   * Call once the change is committed. A notice that cannot be published is
   * logged; the listeners then see the change when their cached copy expires.
   */
  async changed(accountId: AccountId): Promise<void> {
    try {
      await publish(this.redis, this.channel.CHANNEL, this.channel.encode({ accountId }));
    } catch (error) {
      this.logger.error(
        `could not tell ${this.listeners} that ${this.what} of ${accountId} changed: ${(error as Error).message}`,
      );
    }
  }
}

/**
 * An account's device list changed: relays drop the list they check sends
 * against. A lost notice costs at most DEVICE_LIST_CACHE_TTL_MS, and a send
 * that disagrees with a cached list is always checked again against the
 * directory.
 */
@Injectable()
export class DeviceListChanges extends AccountChanges {
  constructor(@Inject(REDIS) redis: Redis) {
    super(redis, deviceListChanges, 'relays', 'the devices');
  }
}

/**
 * Who may send an account sealed messages changed (its unidentified-access key,
 * or whether anyone may): gateways drop the access they check SendSealed and
 * SendMultiRecipient against. A lost notice lets an old key (or a send with no
 * key) in for at most the gateways' UNIDENTIFIED_ACCESS_CACHE_TTL_MS.
 */
@Injectable()
export class UnidentifiedAccessChanges extends AccountChanges {
  constructor(@Inject(REDIS) redis: Redis) {
    super(redis, unidentifiedAccessChanges, 'gateways', 'the unidentified access');
  }
}
