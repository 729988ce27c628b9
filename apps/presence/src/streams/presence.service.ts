import { Inject, Injectable } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import type { VaultAttemptFailed } from '@sotto/contracts/generated/sotto/common/v1/backup';
import type { Envelope } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import { grpcError, requireAccountId, requireDeviceId } from '@sotto/platform/grpc';
import {
  publishToGateways,
  publishToHolders,
  REDIS,
  type HeldStreamEvent,
  type Redis,
} from '@sotto/platform/redis';
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
      await publishToGateways(this.redis, [
        { device, holder: previous, kind: { displaced: { byGatewayId: gatewayId } } },
      ]);
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
    const events = holders.flatMap((holder, index): HeldStreamEvent[] => {
      const device = devices[index];
      if (!holder || !device) return [];
      return [{ device, holder, kind: { displaced: { byGatewayId: '' } } }];
    });
    await publishToGateways(this.redis, events);
    return events.length;
  }

  /** Tells each device's gateway that a password try on the account's vault failed; the rest learn on Connect. */
  reportVaultAttempt(devices: readonly DeviceKey[], report: VaultAttemptFailed): Promise<number> {
    return publishToHolders(
      this.redis,
      devices,
      (device) => device,
      () => ({ vaultAttemptFailed: report }),
    );
  }

  /** Publishes each ephemeral envelope to the gateway holding its device; the rest are dropped, as they should be. */
  deliverEphemeral(envelopes: readonly Envelope[]): Promise<number> {
    const addressed = envelopes.map((envelope, index) => ({
      envelope,
      device: checkDevice(
        { accountId: envelope.destinationAccountId, deviceId: envelope.destinationDeviceId },
        `envelopes[${index}].destination`,
      ),
    }));
    return publishToHolders(
      this.redis,
      addressed,
      ({ device }) => device,
      ({ envelope }) => ({ ephemeral: { ...envelope, ephemeral: true } }),
    );
  }
}
