import { Inject, Injectable } from '@nestjs/common';
import { gatewayEvents, presenceRegistry } from '@sotto/contracts';
import type { Envelope } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import type { QueuedMail } from '@sotto/contracts/generated/sotto/presence/v1/presence';
import { pipelineEach, publishEach, REDIS, type Redis } from '@sotto/platform/redis';
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
  async push(routed: readonly RoutedEnvelope[]): Promise<number> {
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
    const devices = [...byDevice.values()];
    if (devices.length === 0) return 0;
    const holders = await this.locate(devices.map((entry) => entry.device));
    const events = devices.flatMap(({ device, mail, bytes }, index) => {
      const holder = holders[index];
      if (holder === undefined) return [];
      return [
        {
          channel: gatewayEvents.channel(holder.gatewayId),
          event: gatewayEvents.encode({
            device,
            streamId: holder.streamId,
            newMail: { mail: bytes <= gatewayEvents.NEW_MAIL_MAX_BYTES ? mail : [] },
          }),
        },
      ];
    });
    await publishEach(
      this.redis,
      events,
      (each) => each.channel,
      (each) => each.event,
    );
    return events.length;
  }

  /** The gateway and stream holding each device, if any; one round trip per Redis master. */
  private async locate(devices: readonly DeviceAddress[]): Promise<(presenceRegistry.Holder | undefined)[]> {
    const replies = await pipelineEach(this.redis, devices, presenceRegistry.key, (pipeline, device) =>
      pipeline.get(presenceRegistry.key(device)),
    );
    return replies.map(([error, value]) => {
      if (error) throw error;
      return presenceRegistry.decodeHolder(value as string | null);
    });
  }
}
