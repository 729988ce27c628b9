import { Controller } from '@nestjs/common';
import { status, type Metadata } from '@grpc/grpc-js';
import {
  AccountServiceService,
  type GetSenderCertificateResponse,
  type LookupAccountRequest,
  type LookupAccountResponse,
  type LookupUsernameRequest,
  type LookupUsernameResponse,
  type RecoverAccountRequest,
  type RecoverAccountResponse,
  type RegisterRequest,
  type RegisterResponse,
  type RotateDeviceSecretRequest,
  type RotateDeviceSecretResponse,
  type SetRecoveryCredentialRequest,
  type SetRecoveryCredentialResponse,
  type SetUnidentifiedAccessRequest,
  type SetUnidentifiedAccessResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { grpcError, grpcStatusOf, GrpcService, type GrpcController } from '@sotto/platform/grpc';
import type { AccountId, DeviceId } from '@sotto/platform/ids';
import { presentedCredential } from '../auth/authenticator';
import { callerOf, Public } from '../auth/device-auth.guard';
import { SignOuts } from '../auth/sign-outs';
import { SenderCertificateIssuer } from '../sender-certificates/sender-certificate-issuer';
import { UnidentifiedAccess } from '../unidentified-access/unidentified-access';
import { Upstream } from '../upstream/upstream';

/** The public AccountService: registration and recovery are open, everything else needs a device credential. */
@Controller()
@GrpcService(AccountServiceService)
export class AccountsController implements GrpcController<typeof AccountServiceService> {
  constructor(
    private readonly upstream: Upstream,
    private readonly signOuts: SignOuts,
    private readonly senderCertificates: SenderCertificateIssuer,
    private readonly unidentifiedAccess: UnidentifiedAccess,
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
   * directory signs the old devices out; every gateway then stops accepting
   * their credentials and their open streams are closed.
   */
  @Public()
  async recoverAccount(request: RecoverAccountRequest): Promise<RecoverAccountResponse> {
    const recovered = await this.upstream.directory.recoverAccount(request);
    await this.signOuts.signedOut(
      recovered.accountId as AccountId,
      recovered.signedOutDeviceIds as DeviceId[],
    );
    return {
      accountId: recovered.accountId,
      deviceId: recovered.deviceId,
      deviceSecret: recovered.deviceSecret,
    };
  }

  /** Once set, the credential is replaced only by whoever presents the current one (the directory checks). */
  async setRecoveryCredential(
    request: SetRecoveryCredentialRequest,
    metadata: Metadata,
  ): Promise<SetRecoveryCredentialResponse> {
    await this.upstream.directory.setRecoveryCredential({
      accountId: callerOf(metadata).accountId,
      recoveryCredential: request.recoveryCredential,
      currentRecoveryCredential: request.currentRecoveryCredential,
    });
    return {};
  }

  /**
   * The caller's device gets the secret it proposes; the directory checks
   * the current one again under a lock, so of two callers holding the same
   * secret (the owner and a thief) only the first to rotate keeps the device.
   */
  async rotateDeviceSecret(
    request: RotateDeviceSecretRequest,
    metadata: Metadata,
  ): Promise<RotateDeviceSecretResponse> {
    const caller = callerOf(metadata);
    try {
      await this.upstream.directory.rotateDeviceSecret({
        ...caller,
        currentDeviceSecret: presentedCredential(metadata).secret,
        newDeviceSecret: request.newDeviceSecret,
      });
    } catch (error) {
      throw grpcStatusOf(error) === status.UNAUTHENTICATED
        ? grpcError(status.UNAUTHENTICATED, 'authorization: unknown device or wrong secret')
        : error;
    }
    await this.signOuts.signedOut(caller.accountId, [caller.deviceId]);
    return {};
  }

  /** Any signed-in device may ask: it is how a client names whoever the server says wrote to it. */
  lookupAccount(request: LookupAccountRequest): Promise<LookupAccountResponse> {
    return this.upstream.directory.lookupAccount(request);
  }

  /** Only ever for the calling device: a certificate naming anyone else would let the caller send as them. */
  async getSenderCertificate(_request: unknown, metadata: Metadata): Promise<GetSenderCertificateResponse> {
    return { certificate: await this.senderCertificates.issue(callerOf(metadata)) };
  }

  /** Who may send the caller's account sealed messages; the directory checks the key's length. */
  async setUnidentifiedAccess(
    request: SetUnidentifiedAccessRequest,
    metadata: Metadata,
  ): Promise<SetUnidentifiedAccessResponse> {
    await this.unidentifiedAccess.set(callerOf(metadata).accountId, {
      unidentifiedAccessKey: request.unidentifiedAccessKey,
      unrestrictedUnidentifiedAccess: request.unrestrictedUnidentifiedAccess,
    });
    return {};
  }
}
