import { Controller } from '@nestjs/common';
import { status, type Metadata, type ServerUnaryCall } from '@grpc/grpc-js';
import {
  DeviceServiceService,
  type ApproveLinkRequest,
  type ApproveLinkResponse,
  type CompleteLinkRequest,
  type CompleteLinkResponse,
  type CreateLinkResponse,
  type GetDeviceListRequest,
  type GetDeviceListResponse,
  type ListDevicesResponse,
  type RemoveDeviceRequest,
  type RemoveDeviceResponse,
  type SetDeviceListRequest,
  type SetDeviceListResponse,
  type WaitForLinkRequest,
  type WaitForLinkResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { grpcError, GrpcService, type GrpcController } from '@sotto/platform/grpc';
import type { DeviceId } from '@sotto/platform/ids';
import { callerOf, Public } from '../auth/device-auth.guard';
import { SignOuts } from '../auth/sign-outs';
import { Upstream } from '../upstream/upstream';
import { LinkWaits } from './link-waits';

/** The longest one WaitForLink holds, whatever its deadline: a client calls again while its token lives. */
export const MAX_LINK_WAIT_MS = 5 * 60_000;

/** When the call's deadline passes (epoch ms), Infinity if it has none. */
function deadlineOf(call: ServerUnaryCall<unknown, unknown> | undefined): number {
  const deadline = call?.getDeadline?.();
  if (deadline === undefined) return Infinity;
  return deadline instanceof Date ? deadline.getTime() : deadline;
}

/**
 * The public DeviceService: linking a new device to an account, the account's
 * devices, and its signed device list. The directory checks every list
 * against the change it comes with; this side adds the long poll and what a
 * removed device's sign-out takes.
 */
@Controller()
@GrpcService(DeviceServiceService)
export class DevicesController implements GrpcController<typeof DeviceServiceService> {
  constructor(
    private readonly upstream: Upstream,
    private readonly waits: LinkWaits,
    private readonly signOuts: SignOuts,
  ) {}

  @Public()
  createLink(): Promise<CreateLinkResponse> {
    return this.upstream.directory.createLink({});
  }

  /**
   * Holds until the token is approved (woken by the approving gateway's
   * notice, or a slow poll), until the call's deadline (capped by the token's
   * life and MAX_LINK_WAIT_MS) or until the caller gives up.
   */
  @Public()
  async waitForLink(
    request: WaitForLinkRequest,
    _metadata: Metadata,
    call?: ServerUnaryCall<WaitForLinkRequest, WaitForLinkResponse>,
  ): Promise<WaitForLinkResponse> {
    const deadline = Math.min(deadlineOf(call), Date.now() + MAX_LINK_WAIT_MS);
    const cancelled = new AbortController();
    call?.once('cancelled', () => cancelled.abort());
    for (;;) {
      const link = await this.upstream.directory.getLink({ token: request.token });
      if (link.approved) {
        return { accountId: link.accountId, deviceId: link.deviceId, provisioning: link.provisioning };
      }
      if (cancelled.signal.aborted) throw grpcError(status.CANCELLED, 'the caller cancelled');
      if (this.waits.closing) throw grpcError(status.UNAVAILABLE, 'the gateway is stopping; call again');
      // At the token's expiry the next read answers NOT_FOUND.
      const until = Math.min(deadline, Number(link.expiresAtMs) + 1);
      if (Date.now() >= deadline) {
        throw grpcError(
          status.DEADLINE_EXCEEDED,
          'token: not approved yet; call again while the token lives',
        );
      }
      await this.waits.next(request.token, until, cancelled.signal);
    }
  }

  async approveLink(request: ApproveLinkRequest, metadata: Metadata): Promise<ApproveLinkResponse> {
    const approved = await this.upstream.directory.approveLink({
      accountId: callerOf(metadata).accountId,
      token: request.token,
      provisioning: request.provisioning,
    });
    await this.waits.approved(request.token);
    return { deviceId: approved.deviceId };
  }

  @Public()
  completeLink(request: CompleteLinkRequest): Promise<CompleteLinkResponse> {
    return this.upstream.directory.completeLink(request);
  }

  async listDevices(_request: unknown, metadata: Metadata): Promise<ListDevicesResponse> {
    const { devices } = await this.upstream.directory.listDeviceDetails({
      accountId: callerOf(metadata).accountId,
    });
    return { devices };
  }

  /** Once the directory removed it: its credential stops working on every gateway and its streams end. */
  async removeDevice(request: RemoveDeviceRequest, metadata: Metadata): Promise<RemoveDeviceResponse> {
    const { accountId } = callerOf(metadata);
    await this.upstream.directory.removeDevice({
      accountId,
      deviceId: request.deviceId,
      deviceList: request.deviceList,
    });
    await this.signOuts.signedOut(accountId, [request.deviceId as DeviceId]);
    return {};
  }

  async setDeviceList(request: SetDeviceListRequest, metadata: Metadata): Promise<SetDeviceListResponse> {
    await this.upstream.directory.setDeviceList({
      accountId: callerOf(metadata).accountId,
      deviceList: request.deviceList,
    });
    return {};
  }

  getDeviceList(request: GetDeviceListRequest): Promise<GetDeviceListResponse> {
    return this.upstream.directory.getDeviceList({ accountId: request.accountId });
  }
}
