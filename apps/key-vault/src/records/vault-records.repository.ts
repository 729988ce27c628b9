import { Inject, Injectable } from '@nestjs/common';
import type { AccountId } from '@sotto/platform/ids';
import { inTransaction, PG_POOL, type Pool } from '@sotto/platform/postgres';
import { FREE_TRIES, TRY_DELAYS } from './try-spacing';

/** Logins answered between two successes, at most. The hard guess limit. */
export const MAX_ATTEMPTS = 10;

/** A login attempt, counted: what the server needs to answer it. */
export interface CountedAttempt {
  readonly sealedRecord: Buffer;
  readonly credentialIdentifier: Buffer;
  /** Successes so far; a failure is counted only against the epoch it started in. */
  readonly epoch: string;
  readonly attemptsUsed: number;
  /** The login must be finished by then (database clock). */
  readonly deadline: Date;
}

export type VaultState =
  | { readonly kind: 'none' }
  | { readonly kind: 'destroyed' }
  | {
      readonly kind: 'live';
      readonly credentialIdentifier: Buffer;
      readonly attemptsUsed: number;
      /** Until the last started login expires; 0 when none is pending. */
      readonly pendingMs: number;
      /**
       * Tries since the last success known to have failed: all of them once
       * none is pending (a success would have reset the count), else those
       * whose FinishLogin failed.
       */
      readonly failedAttempts: number;
      /** Until the next try may be counted; 0 when it may be now. */
      readonly waitMs: number;
    };

/** A registration as stored: the record and recovery key sealed by the HSM. */
export interface NewRecord {
  readonly credentialIdentifier: Buffer;
  readonly sealedRecord: Buffer;
  readonly sealedRecoveryKey: Buffer;
  readonly recoveryProofSalt: Buffer;
  readonly recoveryProofHash: Buffer;
}

export interface RecoveryProofHash {
  readonly credentialIdentifier: Buffer;
  readonly salt: Buffer;
  readonly hash: Buffer;
}

// Destroys vaults whose tries are all spent and can no longer succeed: all of
// them failed, or the last one expired. Leaves a tombstone, in one statement.
const DESTROY_SPENT = (where: string): string => `
  WITH gone AS (
    DELETE FROM vault_records
    WHERE ${where} AND attempts_used >= ${MAX_ATTEMPTS}
      AND (attempts_failed >= ${MAX_ATTEMPTS} OR pending_until <= now())
    RETURNING account_id)
  INSERT INTO vault_tombstones (account_id) SELECT account_id FROM gone
  ON CONFLICT (account_id) DO UPDATE SET destroyed_at = now()
  RETURNING account_id`;

// The wait before the row's next try, in seconds: none within the free tries,
// then KEY_VAULT_TRY_DELAYS' entry for that try. `delays` is a float8[] parameter.
const DELAY = (delays: string): string =>
  `CASE WHEN attempts_used < ${FREE_TRIES} THEN 0
        ELSE coalesce((${delays})[attempts_used - ${FREE_TRIES - 1}], 0) END`;

// Whether the row's next try may be counted now. A zero wait is no condition at
// all: a try counted concurrently by a transaction that started later must not
// hold this one back.
const WAIT_OVER = (delays: string): string =>
  `(${DELAY(delays)} = 0 OR last_attempt_at + make_interval(secs => ${DELAY(delays)}) <= now())`;

// Milliseconds until the row's next try may be counted; 0 when it may be now,
// and when all tries are spent (then none comes). Guarded: '-infinity' - now() is an error.
const WAIT_MS = (delays: string): string =>
  `CASE WHEN attempts_used >= ${MAX_ATTEMPTS} OR ${WAIT_OVER(delays)} THEN 0::bigint
        ELSE ceil(extract(epoch FROM last_attempt_at + make_interval(secs => ${DELAY(delays)}) - now())
                  * 1000)::bigint END`;

// Tries since the last success known to have failed (see VaultState).
const FAILED = `CASE WHEN pending_until > now() THEN attempts_failed ELSE attempts_used END`;

/**
 * Vault records in PostgreSQL. Every invariant of the guess limit is one
 * conditional statement on the account's row, so it holds across connections
 * and replicas without any lock of our own.
 */
@Injectable()
export class VaultRecordsRepository {
  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    /** Seconds to wait before each try after the free ones (KEY_VAULT_TRY_DELAYS). */
    @Inject(TRY_DELAYS) private readonly tryDelays: readonly number[],
  ) {}

  /**
   * Counts one login attempt, unless 10 are already spent or the next one must
   * still wait, and runs `answer` with it in the same transaction: the count
   * is committed before `answer`'s result reaches the client, and a throw (a
   * malformed request) undoes it. Undefined when there was nothing to count
   * against, or it must wait.
   */
  async countAttempt<T>(
    accountId: AccountId,
    ttlSeconds: number,
    answer: (attempt: CountedAttempt) => T | Promise<T>,
  ): Promise<T | undefined> {
    return inTransaction(this.pool, async (client) => {
      const { rows } = await client.query<{
        opaque_record: Buffer;
        credential_identifier: Buffer;
        epoch: string;
        attempts_used: number;
        deadline: Date;
      }>(
        `UPDATE vault_records
         SET attempts_used = attempts_used + 1,
             last_attempt_at = greatest(last_attempt_at, now()),
             pending_until = greatest(pending_until, now() + make_interval(secs => $2)),
             updated_at = now()
         WHERE account_id = $1 AND attempts_used < ${MAX_ATTEMPTS} AND ${WAIT_OVER('$3::float8[]')}
         RETURNING opaque_record, credential_identifier, epoch, attempts_used,
                   now() + make_interval(secs => $2) AS deadline`,
        [accountId, ttlSeconds, this.tryDelays],
      );
      const row = rows[0];
      // Nothing counted: the transaction has nothing to commit.
      if (!row) return undefined;
      return answer({
        sealedRecord: row.opaque_record,
        credentialIdentifier: row.credential_identifier,
        epoch: row.epoch,
        attemptsUsed: row.attempts_used,
        deadline: row.deadline,
      });
    });
  }

  /**
   * Counts a failed FinishLogin against the epoch its login started in;
   * undefined if that is over. With the wait before the next try.
   */
  async recordFailure(
    accountId: AccountId,
    credentialIdentifier: Buffer,
    epoch: string,
  ): Promise<{ attemptsUsed: number; attemptsFailed: number; waitMs: number } | undefined> {
    const { rows } = await this.pool.query<{
      attempts_used: number;
      attempts_failed: number;
      wait_ms: string;
    }>(
      `UPDATE vault_records SET attempts_failed = attempts_failed + 1, updated_at = now()
       WHERE account_id = $1 AND credential_identifier = $2 AND epoch = $3
       RETURNING attempts_used, attempts_failed, ${WAIT_MS('$4::float8[]')} AS wait_ms`,
      [accountId, credentialIdentifier, epoch, this.tryDelays],
    );
    const row = rows[0];
    return row
      ? { attemptsUsed: row.attempts_used, attemptsFailed: row.attempts_failed, waitMs: Number(row.wait_ms) }
      : undefined;
  }

  /**
   * Clears the count, as a success does, without a login: 10 tries again and
   * no wait. The epoch moves on, so logins in flight can no longer fail
   * against the new count. False without a vault.
   */
  async resetAttempts(accountId: AccountId): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `UPDATE vault_records
       SET attempts_used = 0, attempts_failed = 0, epoch = epoch + 1, updated_at = now()
       WHERE account_id = $1`,
      [accountId],
    );
    return (rowCount ?? 0) > 0;
  }

  /** Forgets that the account's vault was destroyed; true if it had been. */
  async clearTombstone(accountId: AccountId): Promise<boolean> {
    const { rowCount } = await this.pool.query('DELETE FROM vault_tombstones WHERE account_id = $1', [
      accountId,
    ]);
    return (rowCount ?? 0) > 0;
  }

  /**
   * A successful login, in time, against the record it started with: resets
   * the count and returns the sealed recovery key. Undefined otherwise.
   */
  async recordSuccess(
    accountId: AccountId,
    credentialIdentifier: Buffer,
    deadline: Date,
  ): Promise<Buffer | undefined> {
    const { rows } = await this.pool.query<{ sealed_recovery_key: Buffer }>(
      `UPDATE vault_records
       SET attempts_used = 0, attempts_failed = 0, epoch = epoch + 1, updated_at = now()
       WHERE account_id = $1 AND credential_identifier = $2 AND now() <= $3
       RETURNING sealed_recovery_key`,
      [accountId, credentialIdentifier, deadline],
    );
    return rows[0]?.sealed_recovery_key;
  }

  /** Destroys this account's vault if its tries are spent; true if it did. */
  async destroyIfSpent(accountId: AccountId): Promise<boolean> {
    const { rowCount } = await this.pool.query(DESTROY_SPENT('account_id = $1'), [accountId]);
    return (rowCount ?? 0) > 0;
  }

  /** Destroys every vault whose tries are spent; how many. */
  async destroyAllSpent(): Promise<number> {
    const { rowCount } = await this.pool.query(DESTROY_SPENT('true'));
    return rowCount ?? 0;
  }

  async state(accountId: AccountId): Promise<VaultState> {
    const { rows } = await this.pool.query<{
      credential_identifier: Buffer | null;
      attempts_used: number | null;
      pending_ms: string | null;
      failed: number | null;
      wait_ms: string | null;
      destroyed: boolean;
    }>(
      `SELECT r.credential_identifier, r.attempts_used,
              CASE WHEN r.pending_until > now()
                   THEN ceil(extract(epoch FROM r.pending_until - now()) * 1000)::bigint ELSE 0 END AS pending_ms,
              r.failed, r.wait_ms,
              t.account_id IS NOT NULL AS destroyed
       FROM (SELECT $1::uuid AS account_id) AS a
       LEFT JOIN (SELECT *, ${FAILED} AS failed, ${WAIT_MS('$2::float8[]')} AS wait_ms
                  FROM vault_records WHERE account_id = $1) r ON r.account_id = a.account_id
       LEFT JOIN vault_tombstones t ON t.account_id = a.account_id`,
      [accountId, this.tryDelays],
    );
    const row = rows[0];
    if (row?.credential_identifier && row.attempts_used !== null) {
      return {
        kind: 'live',
        credentialIdentifier: row.credential_identifier,
        attemptsUsed: row.attempts_used,
        pendingMs: Number(row.pending_ms ?? 0),
        failedAttempts: row.failed ?? 0,
        waitMs: Number(row.wait_ms ?? 0),
      };
    }
    return row?.destroyed ? { kind: 'destroyed' } : { kind: 'none' };
  }

  async recoveryProof(accountId: AccountId): Promise<RecoveryProofHash | undefined> {
    const { rows } = await this.pool.query<{
      credential_identifier: Buffer;
      recovery_proof_salt: Buffer;
      recovery_proof_hash: Buffer;
    }>(
      `SELECT credential_identifier, recovery_proof_salt, recovery_proof_hash
       FROM vault_records WHERE account_id = $1`,
      [accountId],
    );
    const row = rows[0];
    return row
      ? {
          credentialIdentifier: row.credential_identifier,
          salt: row.recovery_proof_salt,
          hash: row.recovery_proof_hash,
        }
      : undefined;
  }

  /** The account's first vault (or its first since one was destroyed); false if one exists. */
  async create(accountId: AccountId, record: NewRecord): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `WITH cleared AS (DELETE FROM vault_tombstones WHERE account_id = $1)
       INSERT INTO vault_records (account_id, credential_identifier, opaque_record, sealed_recovery_key,
                                  recovery_proof_salt, recovery_proof_hash)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (account_id) DO NOTHING`,
      [
        accountId,
        record.credentialIdentifier,
        record.sealedRecord,
        record.sealedRecoveryKey,
        record.recoveryProofSalt,
        record.recoveryProofHash,
      ],
    );
    return (rowCount ?? 0) > 0;
  }

  /**
   * Replaces the vault that the proof was checked against, and only that one:
   * false if it was replaced or destroyed in the meantime. The count starts over.
   */
  async replace(accountId: AccountId, provenAgainst: Buffer, record: NewRecord): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `UPDATE vault_records
       SET credential_identifier = $3, opaque_record = $4, sealed_recovery_key = $5,
           recovery_proof_salt = $6, recovery_proof_hash = $7,
           attempts_used = 0, attempts_failed = 0, epoch = epoch + 1, updated_at = now()
       WHERE account_id = $1 AND credential_identifier = $2`,
      [
        accountId,
        provenAgainst,
        record.credentialIdentifier,
        record.sealedRecord,
        record.sealedRecoveryKey,
        record.recoveryProofSalt,
        record.recoveryProofHash,
      ],
    );
    return (rowCount ?? 0) > 0;
  }

  /** Removes the vault, and any record that one was destroyed; true if there was a vault. */
  async delete(accountId: AccountId): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `WITH cleared AS (DELETE FROM vault_tombstones WHERE account_id = $1)
       DELETE FROM vault_records WHERE account_id = $1`,
      [accountId],
    );
    return (rowCount ?? 0) > 0;
  }
}
