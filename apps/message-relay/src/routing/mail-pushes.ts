import { Inject, Injectable } from '@nestjs/common';
import { gatewayEvents } from '@sotto/contracts';
import type { Envelope } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import type { QueuedMail } from '@sotto/contracts/generated/sotto/presence/v1/presence';
import { publishToHolders, REDIS, type Redis } from '@sotto/platform/redis';
import type { DeviceAddress } from '../mailbox/mailbox.store';

/** An envelope just written into its device's mailbox, at this sequence. */
export interface RoutedEnvelope {
  readonly device: DeviceAddress;
  readonly sequence: number;
  readonly envelope: Envelope;
}

const deviceKey = (device: DeviceAddress): string => `${device.accountId}.${device.deviceId}`;

/**
 * Tells the gateway holding each device's stream about its new mail, with
 * the envelopes themselves: a gateway whose stream is caught up pushes them
 * as they are, with no read of the mailbox. It finds the gateways in the
 * presence registry (presence writes it; this only reads) and publishes on
 * their event channels: two round trips per batch, with no call to presence.
 * Best effort, as pub/sub is: a stream that misses an event gets the mail
 * on its next drain.
 */
@Injectable()
export class MailPushes {
  constructor(@Inject(REDIS) private readonly redis: Redis) {}

  /**
   * Call once the envelopes are in their mailboxes: a stream that claims its
   * device after the registry is read drains the mailbox after its claim,
   * so it finds them there.
   */
  push(routed: readonly RoutedEnvelope[]): Promise<number> {
    const byDevice = new Map<string, { device: DeviceAddress; mail: QueuedMail[]; bytes: number }>();
    for (const { device, sequence, envelope } of routed) {
      if (sequence <= 0) continue;
      const key = deviceKey(device);
      let entry = byDevice.get(key);
      if (entry === undefined) {
        entry = { device, mail: [], bytes: 0 };
        byDevice.set(key, entry);
      }
      entry.mail.push({ sequence: String(sequence), envelope });
      entry.bytes += envelope.content.length;
    }
    return publishToHolders(
      this.redis,
      [...byDevice.values()],
      (entry) => entry.device,
      ({ mail, bytes }) => ({ newMail: { mail: bytes <= gatewayEvents.NEW_MAIL_MAX_BYTES ? mail : [] } }),
    );
  }
}
