import { randomBytes } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import { grpcError } from '@sotto/platform/grpc';
import type { AccountId } from '@sotto/platform/ids';
import { recordContext, recoveryKeyContext } from '../records/seal-contexts';
import { vaultReplaced } from '../records/vault-errors';
import { VaultRecordsRepository, type RecoveryProofHash } from '../records/vault-records.repository';
import { Sealer } from '../sealing/sealer';
import { MalformedOpaqueMessage, OpaqueServer } from '../server-setup/opaque-server';
import { ChangeTokens } from './change-tokens';
import { hashRecoveryProof, verifyRecoveryProof } from './recovery-proof';
import { RegistrationSessions } from './registration-sessions';

/** How the caller proves the right to replace an existing vault. */
export type ReplacementProof =
  { readonly changeToken: string } | { readonly currentRecoveryProof: Buffer } | undefined;

export interface FinishRegistrationInput {
  readonly registrationId: string;
  readonly registrationRecord: Buffer;
  readonly sealedRecoveryKey: Buffer;
  readonly recoveryProof: Buffer;
  readonly proof: ReplacementProof;
}

const noSuchRegistration = () =>
  grpcError(status.NOT_FOUND, 'registration_id: no such registration in progress (expired or finished)');

/**
 * OPAQUE registration. Each registration gets a fresh credential identifier,
 * so a registration response is never an evaluation of the live record's OPRF
 * key (that would let whoever can register test passwords against it without
 * spending tries). Replacing a vault needs proof of the old password or of the
 * recovery key.
 */
@Injectable()
export class RegistrationService {
  constructor(
    private readonly records: VaultRecordsRepository,
    private readonly sessions: RegistrationSessions,
    private readonly changeTokens: ChangeTokens,
    private readonly opaque: OpaqueServer,
    private readonly sealer: Sealer,
  ) {}

  async start(
    accountId: AccountId,
    request: Buffer,
  ): Promise<{ registrationId: string; registrationResponse: Buffer }> {
    const credentialIdentifier = randomBytes(16);
    let registrationResponse: Buffer;
    try {
      registrationResponse = this.opaque.registrationResponse(credentialIdentifier, request);
    } catch (error) {
      if (error instanceof MalformedOpaqueMessage) {
        throw grpcError(
          status.INVALID_ARGUMENT,
          'registration_request: is not an OPAQUE registration request',
        );
      }
      throw error;
    }
    const registrationId = await this.sessions.create({ accountId, credentialIdentifier });
    return { registrationId, registrationResponse };
  }

  async finish(accountId: AccountId, input: FinishRegistrationInput): Promise<{ replaced: boolean }> {
    const session = await this.sessions.find(input.registrationId);
    // Another account's registration id is as unknown to this account as a made-up one.
    if (!session || session.accountId !== accountId) throw noSuchRegistration();
    if (!this.opaque.isRecord(input.registrationRecord)) {
      throw grpcError(status.INVALID_ARGUMENT, 'registration_record: is not an OPAQUE registration record');
    }
    const current = await this.records.recoveryProof(accountId);
    if (current) await this.checkProof(accountId, current, input.proof);

    const cid = session.credentialIdentifier;
    const proofHash = hashRecoveryProof(input.recoveryProof);
    const record = {
      credentialIdentifier: cid,
      sealedRecord: this.sealer.seal(input.registrationRecord, recordContext(accountId, cid)),
      sealedRecoveryKey: this.sealer.seal(input.sealedRecoveryKey, recoveryKeyContext(accountId, cid)),
      recoveryProofSalt: proofHash.salt,
      recoveryProofHash: proofHash.hash,
    };
    // Only the vault the proof was checked against is replaced, which also spends a change token.
    const stored = current
      ? await this.records.replace(accountId, current.credentialIdentifier, record)
      : await this.records.create(accountId, record);
    if (!stored) throw vaultReplaced();
    await this.sessions.remove(input.registrationId);
    if (input.proof && 'changeToken' in input.proof) await this.changeTokens.remove(input.proof.changeToken);
    return { replaced: current !== undefined };
  }

  private async checkProof(
    accountId: AccountId,
    current: RecoveryProofHash,
    proof: ReplacementProof,
  ): Promise<void> {
    if (!proof) {
      throw grpcError(
        status.PERMISSION_DENIED,
        'this account has a vault: replacing it needs change_token (from a login with the old password) ' +
          'or current_recovery_proof (from the recovery key)',
      );
    }
    if ('changeToken' in proof) {
      const grant = await this.changeTokens.find(proof.changeToken);
      const valid =
        grant !== undefined &&
        grant.accountId === accountId &&
        grant.credentialIdentifier.equals(current.credentialIdentifier);
      if (!valid) {
        throw grpcError(
          status.PERMISSION_DENIED,
          'change_token: not valid for this vault (expired, used, or from another account or password)',
        );
      }
      return;
    }
    if (!verifyRecoveryProof(proof.currentRecoveryProof, current)) {
      throw grpcError(status.PERMISSION_DENIED, 'current_recovery_proof: does not match this vault');
    }
  }
}
