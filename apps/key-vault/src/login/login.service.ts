import { Inject, Injectable } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import { grpcError } from '@sotto/platform/grpc';
import type { AccountId } from '@sotto/platform/ids';
import { VaultMetrics } from '../metrics/vault-metrics';
import { recordContext, recoveryKeyContext } from '../records/seal-contexts';
import {
  attemptsInFlight,
  mustWait,
  noVault,
  vaultDestroyed,
  vaultReplaced,
  wrongPassword,
} from '../records/vault-errors';
import { MAX_ATTEMPTS, VaultRecordsRepository, type VaultState } from '../records/vault-records.repository';
import { ChangeTokens } from '../registration/change-tokens';
import { Sealer } from '../sealing/sealer';
import { MalformedOpaqueMessage, OpaqueServer } from '../server-setup/opaque-server';
import { LoginRateLimit } from './login-rate-limit';
import { LoginSessions, type LoginSession } from './login-sessions';

export const LOGIN_TTL_SECONDS = Symbol('LOGIN_TTL_SECONDS');

/**
 * OPAQUE login under the hard guess limit. StartLogin counts the attempt in
 * PostgreSQL before the server's answer exists outside this process; a success
 * resets the count; the vault is destroyed once its 10 tries are spent and
 * none can still succeed. After the first 3 tries since a success, a try is
 * counted only once its wait since the last one has passed (KEY_VAULT_TRY_DELAYS);
 * one refused for waiting spends nothing.
 */
@Injectable()
export class LoginService {
  constructor(
    private readonly records: VaultRecordsRepository,
    private readonly sessions: LoginSessions,
    private readonly changeTokens: ChangeTokens,
    private readonly rateLimit: LoginRateLimit,
    private readonly opaque: OpaqueServer,
    private readonly sealer: Sealer,
    private readonly metrics: VaultMetrics,
    @Inject(LOGIN_TTL_SECONDS) private readonly ttlSeconds: number,
  ) {}

  async start(
    accountId: AccountId,
    request: Buffer,
    source: string,
  ): Promise<{ loginId: string; credentialResponse: Buffer; attemptsLeft: number }> {
    await this.rateLimit.hitSource(source);
    // A try that must wait is refused before it spends anything, the account's allowance included:
    // a stranger knocking meanwhile must not use up the owner's logins for when the wait is over.
    const before = await this.records.state(accountId);
    if (before.kind === 'live') this.refuseIfWaiting(before);
    await this.rateLimit.hitAccount(accountId);
    // Twice at most: a success elsewhere may reset the count between the two statements below.
    for (let round = 0; round < 2; round += 1) {
      const answered = await this.records.countAttempt(accountId, this.ttlSeconds, (attempt) => {
        const record = this.sealer.unseal(
          attempt.sealedRecord,
          recordContext(accountId, attempt.credentialIdentifier),
        );
        try {
          return { attempt, ...this.opaque.startLogin(attempt.credentialIdentifier, record, request) };
        } catch (error) {
          // Thrown inside the transaction: the count is undone, the request changed nothing.
          if (error instanceof MalformedOpaqueMessage) {
            throw grpcError(
              status.INVALID_ARGUMENT,
              'credential_request: is not an OPAQUE credential request',
            );
          }
          throw error;
        }
      });
      if (answered) {
        const { attempt, response, state } = answered;
        const loginId = await this.sessions.create(
          {
            accountId,
            credentialIdentifier: attempt.credentialIdentifier,
            epoch: attempt.epoch,
            deadline: attempt.deadline,
            serverState: state,
          },
          this.ttlSeconds * 1000,
        );
        return { loginId, credentialResponse: response, attemptsLeft: MAX_ATTEMPTS - attempt.attemptsUsed };
      }
      if (await this.destroyIfSpent(accountId)) throw vaultDestroyed();
      const vault = await this.records.state(accountId);
      if (vault.kind === 'none') throw noVault();
      if (vault.kind === 'destroyed') throw vaultDestroyed();
      if (vault.attemptsUsed >= MAX_ATTEMPTS) throw attemptsInFlight(vault.pendingMs);
      // Another try was counted since the first look, and this one must wait after it.
      this.refuseIfWaiting(vault);
    }
    throw grpcError(status.ABORTED, 'the vault changed while the attempt was counted; try again');
  }

  async finish(
    loginId: string,
    finalization: Buffer,
  ): Promise<{ sealedRecoveryKey: Buffer; changeToken: string }> {
    const session = await this.sessions.take(loginId);
    if (!session) {
      throw grpcError(status.NOT_FOUND, 'login_id: no such login in progress (expired or already finished)');
    }
    if (!this.opaque.finishLogin(session.serverState, finalization)) {
      this.metrics.login('wrong_password');
      throw await this.failure(session);
    }
    const sealed = await this.records.recordSuccess(
      session.accountId,
      session.credentialIdentifier,
      session.deadline,
    );
    if (!sealed) throw await this.gone(session);
    this.metrics.login('success');
    const sealedRecoveryKey = this.sealer.unseal(
      sealed,
      recoveryKeyContext(session.accountId, session.credentialIdentifier),
    );
    const changeToken = await this.changeTokens.issue({
      accountId: session.accountId,
      credentialIdentifier: session.credentialIdentifier,
    });
    return { sealedRecoveryKey, changeToken };
  }

  /** RESOURCE_EXHAUSTED with the wait, if the vault's next try may not be counted yet. */
  private refuseIfWaiting(vault: Extract<VaultState, { kind: 'live' }>): void {
    if (vault.waitMs <= 0 || vault.attemptsUsed >= MAX_ATTEMPTS) return;
    this.metrics.loginRefusedForWait();
    throw mustWait(vault.waitMs, MAX_ATTEMPTS - vault.attemptsUsed);
  }

  /**
   * Counts a failed login; the last of ten destroys the vault. The error to
   * answer with, naming the account for the gateway to tell its devices.
   */
  private async failure(session: LoginSession): Promise<Error> {
    const { accountId } = session;
    const counted = await this.records.recordFailure(accountId, session.credentialIdentifier, session.epoch);
    if (counted && counted.attemptsFailed >= MAX_ATTEMPTS) {
      await this.destroyIfSpent(accountId);
      return vaultDestroyed(accountId);
    }
    if (counted) return wrongPassword(MAX_ATTEMPTS - counted.attemptsUsed, accountId, counted.waitMs);
    // Not counted: a success reset the count since, or the vault is no longer the one this login saw.
    const vault = await this.records.state(accountId);
    if (vault.kind === 'destroyed') return vaultDestroyed(accountId);
    return vault.kind === 'live'
      ? wrongPassword(MAX_ATTEMPTS - vault.attemptsUsed, accountId, vault.waitMs)
      : wrongPassword(0, accountId);
  }

  /** Why a correct login found nothing to unlock. */
  private async gone(session: LoginSession): Promise<Error> {
    const vault = await this.records.state(session.accountId);
    if (vault.kind === 'destroyed') return vaultDestroyed();
    if (vault.kind === 'none') return noVault();
    if (!vault.credentialIdentifier.equals(session.credentialIdentifier)) return vaultReplaced();
    return grpcError(status.NOT_FOUND, 'login_id: no such login in progress (expired or already finished)');
  }

  private async destroyIfSpent(accountId: AccountId): Promise<boolean> {
    const destroyed = await this.records.destroyIfSpent(accountId);
    if (destroyed) this.metrics.vaultsDestroyed(1);
    return destroyed;
  }
}
