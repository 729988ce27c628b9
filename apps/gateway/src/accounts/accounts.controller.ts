import { Controller, Logger } from '@nestjs/common';
import type { Metadata } from '@grpc/grpc-js';
import {
  AccountServiceService,
  type LookupAccountRequest,
  type LookupAccountResponse,
  type LookupUsernameRequest,
  type LookupUsernameResponse,
  type RecoverAccountRequest,
  type RecoverAccountResponse,
  type RegisterRequest,
  type RegisterResponse,
  type SetRecoveryCredentialRequest,
  type SetRecoveryCredentialResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { GrpcService, type GrpcController } from '@sotto/platform/grpc';
import { Authenticator } from '../auth/authenticator';
import { callerOf, Public } from '../auth/device-auth.guard';
import { Upstream } from '../upstream/upstream';

/** The public AccountService: registration and recovery are open, everything else needs a device credential. */
@Controller()
@GrpcService(AccountServiceService)
export class AccountsController implements GrpcController<typeof AccountServiceService> {
  private readonly logger = new Logger(AccountsController.name);

  constructor(
    private readonly upstream: Upstream,
    private readonly auth: Authenticator,
  ) {}

  @Public()
  register(request: RegisterRequest): Promise<RegisterResponse> {
    return this.upstream.directory.register(request);
  }

  lookupUsername(request: LookupUsernameRequest): Promise<LookupUsernameResponse> {
    return this.upstream.directory.lookupUsername(request);
  }

  /**
   * A new device takes the account over with the recovery credential. The
   * directory signs the old devices out; their open streams are closed here.
   * Other gateways may still accept an old device's cached credential for up
   * to the authentication cache's lifetime (30 s).
   */
  @Public()
  async recoverAccount(request: RecoverAccountRequest): Promise<RecoverAccountResponse> {
    const recovered = await this.upstream.directory.recoverAccount(request);
    this.auth.forgetAccount(recovered.accountId);
    const devices = recovered.signedOutDeviceIds.map((deviceId) => ({
      accountId: recovered.accountId,
      deviceId,
    }));
    if (devices.length > 0) {
      await this.upstream.presence
        .endStreams({ devices })
        .catch((error: unknown) =>
          this.logger.warn(
            `could not end the streams of signed-out devices: ${error instanceof Error ? error.message : String(error)}`,
          ),
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
    metadata: Metadata,
  ): Promise<SetRecoveryCredentialResponse> {
    await this.upstream.directory.setRecoveryCredential({
      accountId: callerOf(metadata).accountId,
      recoveryCredential: request.recoveryCredential,
    });
    return {};
  }

  /** Any signed-in device may ask: it is how a client names whoever the server says wrote to it. */
  lookupAccount(request: LookupAccountRequest): Promise<LookupAccountResponse> {
    return this.upstream.directory.lookupAccount(request);
  }
}
