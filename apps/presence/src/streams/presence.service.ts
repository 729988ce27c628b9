import { Inject, Injectable } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import { gatewayEvents } from '@sotto/contracts';
import type { VaultAttemptFailed } from '@sotto/contracts/generated/sotto/common/v1/backup';
import type { Envelope } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import { grpcError, requireAccountId, requireDeviceId } from '@sotto/platform/grpc';
import { publish, publishEach, REDIS, type Redis } from '@sotto/platform/redis';
import { StreamRegistry, type DeviceKey, type Holder } from './stream-registry';

const TOKEN = /^[A-Za-z0-9_.:-]{1,128}$/;

function checkToken(value: string, field: string): string {
  if (!TOKEN.test(value)) {
    throw grpcError(
      status.INVALID_ARGUMENT,
      `${field}: must be 1 to 128 characters of A-Z, a-z, 0-9, '_', '.', ':', '-'`,
    );
  }
  return value;
}

export function checkDevice(
  device: { accountId: string; deviceId: number } | undefined | null,
  field: string,
): DeviceKey {
  if (!device) throw grpcError(status.INVALID_ARGUMENT, `${field}: is required`);
  return {
    accountId: requireAccountId(device.accountId, `${field}.account_id`),
    deviceId: requireDeviceId(device.deviceId, `${field}.device_id`),
  };
}

/** Presence: stream claims and the events that tell gateways what happened to their streams. */
@Injectable()
export class PresenceService {
  constructor(
    private readonly registry: StreamRegistry,
    @Inject(REDIS) private readonly redis: Redis,
  ) {}

  /** Takes over the device's stream; the displaced gateway, if any, is told to close its stream. */
  async claim(device: DeviceKey, gatewayId: string, streamId: string): Promise<Holder | undefined> {
    const holder = {
      gatewayId: checkToken(gatewayId, 'gateway_id'),
      streamId: checkToken(streamId, 'stream_id'),
    };
    const previous = await this.registry.claim(device, holder);
    if (previous && previous.streamId !== streamId) {
      await publish(
        this.redis,
        gatewayEvents.channel(previous.gatewayId),
        gatewayEvents.encode({ device, streamId: previous.streamId, displaced: { byGatewayId: gatewayId } }),
      );
    }
    return previous?.streamId === streamId ? undefined : previous;
  }

  release(device: DeviceKey, streamId: string): Promise<boolean> {
    return this.registry.release(device, checkToken(streamId, 'stream_id'));
  }

  heartbeat(gatewayId: string, devices: readonly DeviceKey[]): Promise<number> {
    return this.registry.heartbeat(checkToken(gatewayId, 'gateway_id'), devices);
  }

  locate(devices: readonly DeviceKey[]): Promise<(Holder | undefined)[]> {
    return this.registry.locate(devices);
  }

  /** Closes the streams of signed-out devices: their gateways are told, as for a displacement. */
  async endStreams(devices: readonly DeviceKey[]): Promise<number> {
    const holders = await this.registry.end(devices);
    const events = holders.flatMap((holder, index) => {
      const device = devices[index];
      if (!holder || !device) return [];
      return [
        {
          channel: gatewayEvents.channel(holder.gatewayId),
          event: gatewayEvents.encode({ device, streamId: holder.streamId, displaced: { byGatewayId: '' } }),
        },
      ];
    });
    await this.publishAll(events);
    return events.length;
  }

  /** Tells each device's gateway that it has mail; devices without a stream are skipped. */
  notify(devices: readonly DeviceKey[]): Promise<number> {
    return this.publishToHolders(devices, { newMail: { mail: [] } });
  }

  /** Tells each device's gateway that a password try on the account's vault failed; the rest learn on Connect. */
  reportVaultAttempt(devices: readonly DeviceKey[], report: VaultAttemptFailed): Promise<number> {
    return this.publishToHolders(devices, { vaultAttemptFailed: report });
  }

  /** Publishes one event about each device that has a stream to the gateway holding it; how many had one. */
  private async publishToHolders(
    devices: readonly DeviceKey[],
    kind: Omit<gatewayEvents.Event, 'device' | 'streamId'>,
  ): Promise<number> {
    const holders = await this.registry.locate(devices);
    const events = holders.flatMap((holder, index) => {
      const device = devices[index];
      if (!holder || !device) return [];
      return [
        {
          channel: gatewayEvents.channel(holder.gatewayId),
          event: gatewayEvents.encode({ device, streamId: holder.streamId, ...kind }),
        },
      ];
    });
    await this.publishAll(events);
    return events.length;
  }

  /** One round trip on a server; on a Redis Cluster, one per master serving the gateways' channels. */
  private publishAll(events: readonly { channel: string; event: Buffer }[]): Promise<void> {
    return publishEach(
      this.redis,
      events,
      (each) => each.channel,
      (each) => each.event,
    );
  }

  /** Publishes each ephemeral envelope to the gateway holding its device; the rest are dropped, as they should be. */
  async deliverEphemeral(envelopes: readonly Envelope[]): Promise<number> {
    const devices = envelopes.map((envelope, index) =>
      checkDevice(
        { accountId: envelope.destinationAccountId, deviceId: envelope.destinationDeviceId },
        `envelopes[${index}].destination`,
      ),
    );
    const holders = await this.registry.locate(devices);
    const events = holders.flatMap((holder, index) => {
      const device = devices[index];
      const envelope = envelopes[index];
      if (!holder || !device || !envelope) return [];
      return [
        {
          channel: gatewayEvents.channel(holder.gatewayId),
          event: gatewayEvents.encode({
            device,
            streamId: holder.streamId,
            ephemeral: { ...envelope, ephemeral: true },
          }),
        },
      ];
    });
    await this.publishAll(events);
    return events.length;
  }
}
