import { Controller } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import { PRESENCE_MAX_PER_CALL } from '@sotto/contracts';
import { grpcError, GrpcService, refuse, type GrpcController } from '@sotto/platform/grpc';
import {
  PresenceServiceService,
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
  type ReleaseStreamRequest,
  type ReleaseStreamResponse,
  type ReportVaultAttemptRequest,
  type ReportVaultAttemptResponse,
} from '@sotto/contracts/generated/sotto/presence/v1/presence';
import { PresenceService, checkDevice } from './presence.service';

/** Refuses a call naming more than presence takes at once, whole: nothing of it is done. */
function refuseOversize(items: readonly unknown[], field: string): void {
  if (items.length > PRESENCE_MAX_PER_CALL) {
    throw refuse(
      'too-many',
      `${field}: at most ${PRESENCE_MAX_PER_CALL} per call, not ${items.length}; send them in several calls`,
    );
  }
}

function devicesOf(devices: readonly { accountId: string; deviceId: number }[]) {
  refuseOversize(devices, 'devices');
  return devices.map((device, index) => checkDevice(device, `devices[${index}]`));
}

/** gRPC in, gRPC out for the PresenceService contract. */
@Controller()
@GrpcService(PresenceServiceService)
export class PresenceController implements GrpcController<typeof PresenceServiceService> {
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

  async endStreams(request: EndStreamsRequest): Promise<EndStreamsResponse> {
    return { ended: await this.presence.endStreams(devicesOf(request.devices)) };
  }

  async deliverEphemeral(request: DeliverEphemeralRequest): Promise<DeliverEphemeralResponse> {
    refuseOversize(request.envelopes, 'envelopes');
    return { delivered: await this.presence.deliverEphemeral(request.envelopes) };
  }

  async reportVaultAttempt(request: ReportVaultAttemptRequest): Promise<ReportVaultAttemptResponse> {
    if (!request.report) throw grpcError(status.INVALID_ARGUMENT, 'report: is required');
    return { delivered: await this.presence.reportVaultAttempt(devicesOf(request.devices), request.report) };
  }
}
