import { Controller } from '@nestjs/common';
import {
  PresenceServiceControllerMethods,
  type ClaimStreamRequest,
  type ClaimStreamResponse,
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
}
