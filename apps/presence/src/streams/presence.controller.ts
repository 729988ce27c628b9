import { Controller } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import { EnvelopeType } from '@sotto/contracts/generated/client/sotto/common/v1/envelope';
import { grpcError } from '@sotto/platform/grpc';
import {
  PresenceServiceControllerMethods,
  type ClaimStreamRequest,
  type ClaimStreamResponse,
  type DeliverEphemeralRequest,
  type DeliverEphemeralResponse,
  type EndStreamsRequest,
  type EndStreamsResponse,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type LocateRequest,
  type LocateResponse,
  type NotifyRequest,
  type NotifyResponse,
  type PresenceServiceController,
  type ReleaseStreamRequest,
  type ReleaseStreamResponse,
} from '@sotto/contracts/generated/nest/sotto/presence/v1/presence';
import { PresenceService, checkDevice } from './presence.service';

const MAX_DEVICES_PER_CALL = 1000;

function devicesOf(devices: readonly { accountId: string; deviceId: number }[]) {
  return devices
    .slice(0, MAX_DEVICES_PER_CALL)
    .map((device, index) => checkDevice(device, `devices[${index}]`));
}

/** gRPC in, gRPC out for the PresenceService contract. */
@Controller()
@PresenceServiceControllerMethods()
export class PresenceController implements PresenceServiceController {
  constructor(private readonly presence: PresenceService) {}

  async claimStream(request: ClaimStreamRequest): Promise<ClaimStreamResponse> {
    const displaced = await this.presence.claim(
      checkDevice(request.device, 'device'),
      request.gatewayId,
      request.streamId,
    );
    return { displacedStreamId: displaced?.streamId ?? '', displacedGatewayId: displaced?.gatewayId ?? '' };
  }

  async releaseStream(request: ReleaseStreamRequest): Promise<ReleaseStreamResponse> {
    return { released: await this.presence.release(checkDevice(request.device, 'device'), request.streamId) };
  }

  async heartbeat(request: HeartbeatRequest): Promise<HeartbeatResponse> {
    await this.presence.heartbeat(request.gatewayId, devicesOf(request.devices));
    return {};
  }

  async locate(request: LocateRequest): Promise<LocateResponse> {
    const devices = devicesOf(request.devices);
    const holders = await this.presence.locate(devices);
    return {
      locations: devices.map((device, index) => ({
        device,
        gatewayId: holders[index]?.gatewayId ?? '',
        streamId: holders[index]?.streamId ?? '',
      })),
    };
  }

  async notify(request: NotifyRequest): Promise<NotifyResponse> {
    return { notified: await this.presence.notify(devicesOf(request.devices)) };
  }

  async endStreams(request: EndStreamsRequest): Promise<EndStreamsResponse> {
    return { ended: await this.presence.endStreams(devicesOf(request.devices)) };
  }

  async deliverEphemeral(request: DeliverEphemeralRequest): Promise<DeliverEphemeralResponse> {
    if (request.envelopes.length > MAX_DEVICES_PER_CALL) {
      throw grpcError(status.INVALID_ARGUMENT, `envelopes: at most ${MAX_DEVICES_PER_CALL} per call`);
    }
    // Re-encoded with the client codec, which wants enum numbers; the type is carried through untouched.
    const envelopes = request.envelopes.map((envelope) => ({
      ...envelope,
      content: Buffer.from(envelope.content),
      type:
        EnvelopeType[envelope.type as unknown as keyof typeof EnvelopeType] ??
        EnvelopeType.ENVELOPE_TYPE_UNSPECIFIED,
    }));
    return { delivered: await this.presence.deliverEphemeral(envelopes) };
  }
}
