import { Controller } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import {
  KeyVaultServiceService,
  type DeleteVaultRequest,
  type DeleteVaultResponse,
  type FinishLoginRequest,
  type FinishLoginResponse,
  type FinishRegistrationRequest,
  type FinishRegistrationResponse,
  type GetVaultStatusRequest,
  type GetVaultStatusResponse,
  type ResetAttemptsRequest,
  type ResetAttemptsResponse,
  type StartLoginRequest,
  type StartLoginResponse,
  type StartRegistrationRequest,
  type StartRegistrationResponse,
} from '@sotto/contracts/generated/sotto/vault/v1/vault';
import { grpcError, GrpcService, requireAccountId, type GrpcController } from '@sotto/platform/grpc';
import { ResetAttemptsService } from './attempts/reset-attempts.service';
import { boundedBytes, exactBytes, parseToken } from './fields';
import { sourceBucket } from './login/source-address';
import { LoginService } from './login/login.service';
import { VaultStatusService } from './records/vault-status.service';
import { RegistrationService, type ReplacementProof } from './registration/registration.service';

// OPAQUE ristretto255-SHA512 message sizes (RFC 9807).
const REGISTRATION_REQUEST_BYTES = 32;
const REGISTRATION_RECORD_BYTES = 192;
const KE1_BYTES = 96;
const KE3_BYTES = 64;
const RECOVERY_PROOF_BYTES = 32;
/** The recovery key (64 characters) encrypted by the client, with room for its nonce, tag and framing. */
const MAX_SEALED_RECOVERY_KEY_BYTES = 1024;

function replacementProof(request: FinishRegistrationRequest): ReplacementProof {
  const hasToken = request.changeToken !== '';
  const hasProof = request.currentRecoveryProof.length > 0;
  if (hasToken && hasProof) {
    throw grpcError(status.INVALID_ARGUMENT, 'change_token, current_recovery_proof: give one, not both');
  }
  if (hasToken) return { changeToken: parseToken(request.changeToken, 'change_token', 'a change token') };
  if (hasProof) {
    return {
      currentRecoveryProof: exactBytes(
        request.currentRecoveryProof,
        RECOVERY_PROOF_BYTES,
        'current_recovery_proof',
      ),
    };
  }
  return undefined;
}

/** gRPC in, gRPC out: the KeyVaultService contract, every field checked before anything is touched. */
@Controller()
@GrpcService(KeyVaultServiceService)
export class VaultController implements GrpcController<typeof KeyVaultServiceService> {
  constructor(
    private readonly registration: RegistrationService,
    private readonly login: LoginService,
    private readonly vaults: VaultStatusService,
    private readonly attempts: ResetAttemptsService,
  ) {}

  startRegistration(request: StartRegistrationRequest): Promise<StartRegistrationResponse> {
    return this.registration.start(
      requireAccountId(request.accountId),
      exactBytes(request.registrationRequest, REGISTRATION_REQUEST_BYTES, 'registration_request'),
    );
  }

  finishRegistration(request: FinishRegistrationRequest): Promise<FinishRegistrationResponse> {
    const accountId = requireAccountId(request.accountId);
    return this.registration.finish(accountId, {
      registrationRecord: exactBytes(
        request.registrationRecord,
        REGISTRATION_RECORD_BYTES,
        'registration_record',
      ),
      sealedRecoveryKey: boundedBytes(
        request.sealedRecoveryKey,
        MAX_SEALED_RECOVERY_KEY_BYTES,
        'sealed_recovery_key',
      ),
      registrationId: parseToken(request.registrationId, 'registration_id', 'a registration id'),
      recoveryProof: exactBytes(request.recoveryProof, RECOVERY_PROOF_BYTES, 'recovery_proof'),
      proof: replacementProof(request),
    });
  }

  startLogin(request: StartLoginRequest): Promise<StartLoginResponse> {
    const credentialRequest = exactBytes(request.credentialRequest, KE1_BYTES, 'credential_request');
    const source = sourceBucket(request.source);
    return this.login.start(requireAccountId(request.accountId), credentialRequest, source);
  }

  finishLogin(request: FinishLoginRequest): Promise<FinishLoginResponse> {
    return this.login.finish(
      parseToken(request.loginId, 'login_id', 'a login id'),
      exactBytes(request.credentialFinalization, KE3_BYTES, 'credential_finalization'),
    );
  }

  async getVaultStatus(request: GetVaultStatusRequest): Promise<GetVaultStatusResponse> {
    return { vault: await this.vaults.status(requireAccountId(request.accountId)) };
  }

  deleteVault(request: DeleteVaultRequest): Promise<DeleteVaultResponse> {
    return this.vaults.delete(requireAccountId(request.accountId));
  }

  async resetAttempts(request: ResetAttemptsRequest): Promise<ResetAttemptsResponse> {
    return { vault: await this.attempts.reset(requireAccountId(request.accountId)) };
  }
}
