import { Controller } from '@nestjs/common';
import { status, type Metadata, type ServerUnaryCall } from '@grpc/grpc-js';
import {
  VaultServiceService,
  type DeleteVaultResponse,
  type FinishVaultLoginRequest,
  type FinishVaultLoginResponse,
  type FinishVaultRegistrationRequest,
  type FinishVaultRegistrationResponse,
  type ResetVaultAttemptsResponse,
  type StartVaultLoginRequest,
  type StartVaultLoginResponse,
  type StartVaultRegistrationRequest,
  type StartVaultRegistrationResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { grpcError, grpcStatusOf, GrpcService, peerAddress, type GrpcController } from '@sotto/platform/grpc';
import { callerOf, Public } from '../auth/device-auth.guard';
import { Upstream } from '../upstream/upstream';
import { VaultReports } from './vault-reports';

/**
 * The public VaultService. Registration and deletion act on the caller's own
 * account. Login is for someone who has lost their device, so it is not
 * authenticated: the username is resolved here, and an unknown username gets
 * the same answer as an account without a vault.
 */
@Controller()
@GrpcService(VaultServiceService)
export class VaultController implements GrpcController<typeof VaultServiceService> {
  constructor(
    private readonly upstream: Upstream,
    private readonly reports: VaultReports,
  ) {}

  startVaultRegistration(
    request: StartVaultRegistrationRequest,
    metadata: Metadata,
  ): Promise<StartVaultRegistrationResponse> {
    return this.upstream.keyVault.startRegistration({ ...request, accountId: callerOf(metadata).accountId });
  }

  finishVaultRegistration(
    request: FinishVaultRegistrationRequest,
    metadata: Metadata,
  ): Promise<FinishVaultRegistrationResponse> {
    return this.upstream.keyVault.finishRegistration({ ...request, accountId: callerOf(metadata).accountId });
  }

  @Public()
  async startVaultLogin(
    request: StartVaultLoginRequest,
    _metadata: Metadata,
    call: ServerUnaryCall<StartVaultLoginRequest, StartVaultLoginResponse>,
  ): Promise<StartVaultLoginResponse> {
    try {
      const account = await this.upstream.directory.lookupUsername({ username: request.username });
      return await this.upstream.keyVault.startLogin({
        accountId: account.accountId,
        credentialRequest: request.credentialRequest,
        source: peerAddress(call.getPeer()),
      });
    } catch (error) {
      // The same answer for an unknown username and an account without a vault.
      throw grpcStatusOf(error) === status.NOT_FOUND
        ? grpcError(status.NOT_FOUND, 'username: has no password vault')
        : error;
    }
  }

  /** A failed try is reported to the account's devices; the caller learns no more than the vault says. */
  @Public()
  async finishVaultLogin(request: FinishVaultLoginRequest): Promise<FinishVaultLoginResponse> {
    try {
      return await this.upstream.keyVault.finishLogin(request);
    } catch (error) {
      throw this.reports.afterFailedLogin(error);
    }
  }

  deleteVault(_request: unknown, metadata: Metadata): Promise<DeleteVaultResponse> {
    return this.upstream.keyVault.deleteVault({ accountId: callerOf(metadata).accountId });
  }

  resetVaultAttempts(_request: unknown, metadata: Metadata): Promise<ResetVaultAttemptsResponse> {
    return this.upstream.keyVault.resetAttempts({ accountId: callerOf(metadata).accountId });
  }
}
