import { Controller } from '@nestjs/common';
import type { Metadata } from '@grpc/grpc-js';
import {
  KeysServiceControllerMethods,
  type GetPreKeyBundleRequest,
  type GetPreKeyBundleResponse,
  type GetPreKeyCountResponse,
  type KeysServiceController,
  type UploadPreKeysRequest,
  type UploadPreKeysResponse,
} from '@sotto/contracts/generated/nest/sotto/gateway/v1/gateway';
import { callUpstream } from '@sotto/platform/grpc';
import { Authenticator } from '../auth/authenticator';
import { Upstream } from '../upstream/upstream.module';

/**
 * The public KeysService. The requester and the device whose keys change are
 * always the authenticated device, never something the request names.
 */
@Controller()
@KeysServiceControllerMethods()
export class KeysController implements KeysServiceController {
  constructor(
    private readonly upstream: Upstream,
    private readonly auth: Authenticator,
  ) {}

  async getPreKeyBundle(
    request: GetPreKeyBundleRequest,
    metadata?: Metadata,
  ): Promise<GetPreKeyBundleResponse> {
    const caller = await this.auth.authenticate(metadata);
    return callUpstream(
      'prekey-directory',
      this.upstream.directory.getPreKeyBundle({
        requesterAccountId: caller.accountId,
        targetAccountId: request.accountId,
        targetDeviceId: request.deviceId,
      }),
    );
  }

  async getPreKeyCount(_request: unknown, metadata?: Metadata): Promise<GetPreKeyCountResponse> {
    const caller = await this.auth.authenticate(metadata);
    return callUpstream('prekey-directory', this.upstream.directory.getPreKeyCount(caller));
  }

  async uploadPreKeys(request: UploadPreKeysRequest, metadata?: Metadata): Promise<UploadPreKeysResponse> {
    const caller = await this.auth.authenticate(metadata);
    return callUpstream('prekey-directory', this.upstream.directory.uploadPreKeys({ ...request, ...caller }));
  }
}
