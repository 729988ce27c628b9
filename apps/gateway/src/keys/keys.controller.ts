import { Controller } from '@nestjs/common';
import type { Metadata } from '@grpc/grpc-js';
import {
  KeysServiceService,
  type GetPreKeyBundleRequest,
  type GetPreKeyBundleResponse,
  type GetPreKeyCountResponse,
  type UploadPreKeysRequest,
  type UploadPreKeysResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { GrpcService, type GrpcController } from '@sotto/platform/grpc';
import { callerOf } from '../auth/device-auth.guard';
import { Upstream } from '../upstream/upstream';

/**
 * The public KeysService. The requester and the device whose keys change are
 * always the authenticated device, never something the request names.
 */
@Controller()
@GrpcService(KeysServiceService)
export class KeysController implements GrpcController<typeof KeysServiceService> {
  constructor(private readonly upstream: Upstream) {}

  getPreKeyBundle(request: GetPreKeyBundleRequest, metadata: Metadata): Promise<GetPreKeyBundleResponse> {
    return this.upstream.directory.getPreKeyBundle({
      requesterAccountId: callerOf(metadata).accountId,
      targetAccountId: request.accountId,
      targetDeviceId: request.deviceId,
    });
  }

  getPreKeyCount(_request: unknown, metadata: Metadata): Promise<GetPreKeyCountResponse> {
    const { accountId, deviceId } = callerOf(metadata);
    return this.upstream.directory.getPreKeyCount({ accountId, deviceId });
  }

  uploadPreKeys(request: UploadPreKeysRequest, metadata: Metadata): Promise<UploadPreKeysResponse> {
    const { accountId, deviceId } = callerOf(metadata);
    return this.upstream.directory.uploadPreKeys({ ...request, accountId, deviceId });
  }
}
