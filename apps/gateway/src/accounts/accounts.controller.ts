import { Controller, Logger } from '@nestjs/common';
import type { Metadata } from '@grpc/grpc-js';
import {
  AccountServiceControllerMethods,
  type AccountServiceController,
  type LookupUsernameRequest,
  type LookupUsernameResponse,
  type RecoverAccountRequest,
  type RecoverAccountResponse,
  type RegisterRequest,
  type RegisterResponse,
  type SetRecoveryCredentialRequest,
  type SetRecoveryCredentialResponse,
} from '@sotto/contracts/generated/nest/sotto/gateway/v1/gateway';
import { callUpstream } from '@sotto/platform/grpc';
import { Authenticator } from '../auth/authenticator';
import { Upstream } from '../upstream/upstream.module';

/** The public AccountService: registration is open, everything else needs a device credential. */
@Controller()
@AccountServiceControllerMethods()
export class AccountsController implements AccountServiceController {
  private readonly logger = new Logger(AccountsController.name);

  constructor(
    private readonly upstream: Upstream,
    private readonly auth: Authenticator,
  ) {}

  register(request: RegisterRequest): Promise<RegisterResponse> {
    return callUpstream('prekey-directory', this.upstream.directory.register(request));
  }

  async lookupUsername(request: LookupUsernameRequest, metadata?: Metadata): Promise<LookupUsernameResponse> {
    await this.auth.authenticate(metadata);
    return callUpstream('prekey-directory', this.upstream.directory.lookupUsername(request));
  }

  /**
   * A new device takes the account over with the recovery credential. The
   * directory signs the old devices out; their open streams are closed here.
   * Other gateways may still accept an old device's cached credential for up
   * to the authentication cache's lifetime (30 s).
   */
  async recoverAccount(request: RecoverAccountRequest): Promise<RecoverAccountResponse> {
    const recovered = await callUpstream('prekey-directory', this.upstream.directory.recoverAccount(request));
    this.auth.forgetAccount(recovered.accountId);
    const devices = recovered.signedOutDeviceIds.map((deviceId) => ({
      accountId: recovered.accountId,
      deviceId,
    }));
    if (devices.length > 0) {
      await callUpstream('presence', this.upstream.presence.endStreams({ devices })).catch((error: Error) =>
        this.logger.warn(`could not end the streams of signed-out devices: ${error.message}`),
      );
    }
    return {
      accountId: recovered.accountId,
      deviceId: recovered.deviceId,
      deviceSecret: recovered.deviceSecret,
    };
  }

  async setRecoveryCredential(
    request: SetRecoveryCredentialRequest,
    metadata?: Metadata,
  ): Promise<SetRecoveryCredentialResponse> {
    const caller = await this.auth.authenticate(metadata);
    await callUpstream(
      'prekey-directory',
      this.upstream.directory.setRecoveryCredential({
        accountId: caller.accountId,
        recoveryCredential: request.recoveryCredential,
      }),
    );
    return {};
  }
}
