import { mkdtempSync, rmSync } from 'node:fs';
import { status } from '@grpc/grpc-js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type {
  BackupVersion,
  VaultAttemptFailed,
  VaultStatus,
} from '@sotto/contracts/generated/sotto/common/v1/backup';
import type { GetBackupStatusResponse } from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import {
  collectBackup,
  deriveAccountRecoveryCredential,
  deriveBackupFileKeys,
  generateRecoveryKey,
  openBackupFile,
  parseRecoveryKey,
  restoreProfile,
  writeBackupFile,
  type RecoveryKey,
} from '../backup';
import {
  downloadBackupFile,
  uploadBackupFile,
  type BusyWait,
  type TransferProgress,
} from '../backup-transfer';
import { SottoError } from '../errors';
import type { Profile } from '../profile';
import { protectRecoveryKey } from '../vault-client';
import type { GatewayConnection } from './connection';

/** Where a device keeps the account's recovery key between backups; readable only by its owner. */
const RECOVERY_KEY_FILE = 'recovery-key';

export interface CreatedBackup {
  recoveryKey: RecoveryKey;
  /** True when this backup made the recovery key: the one time to show it. */
  newRecoveryKey: boolean;
  version: BackupVersion;
  passwordProtected: boolean;
}

/**
 * Someone tried a wrong password on this account's backup vault (or failed
 * tries are still counted): told live, and again on each connection until a
 * successful login or `resetVaultAttempts`.
 */
export interface VaultAttemptReport {
  /** Tries left before the vault is destroyed; 0 once it is. */
  readonly attemptsLeft: number;
  /** Failed tries since the last successful login or reset. */
  readonly failedAttempts: number;
  /** How long until the vault answers another try, in milliseconds from now; 0 when it may be tried now. */
  readonly nextTryAfterMs: number;
  /** The tenth failure destroyed the vault: only the recovery key opens the backup now. */
  readonly destroyed: boolean;
}

export function vaultAttemptReportOf(report: VaultAttemptFailed): VaultAttemptReport {
  return {
    attemptsLeft: report.attemptsLeft,
    failedAttempts: report.failedAttempts,
    nextTryAfterMs: Number(report.nextTryAfterMs),
    destroyed: report.destroyed,
  };
}

/** Keeps the recovery key in the profile, for the device's next backups. */
export function keepRecoveryKey(profile: Profile, recoveryKey: RecoveryKey): void {
  profile.write(RECOVERY_KEY_FILE, recoveryKey);
}

/** Runs `work` with a path in a fresh temporary directory, which is removed afterwards. */
async function withTemporaryFile<T>(prefix: string, work: (path: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    return await work(join(dir, 'backup'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The account's encrypted backups of history and contacts, made and restored on this device. */
export class Backups {
  constructor(
    private readonly connection: GatewayConnection,
    private readonly profile: Profile,
    private readonly accountId: string,
  ) {}

  /** This account's recovery key: the one kept in the profile, or a new one (kept once the server accepts it). */
  private recoveryKey(): { recoveryKey: RecoveryKey; newRecoveryKey: boolean } {
    const stored = this.profile.read(RECOVERY_KEY_FILE)?.toString('utf8');
    if (stored) return { recoveryKey: parseRecoveryKey(stored), newRecoveryKey: false };
    return { recoveryKey: generateRecoveryKey(), newRecoveryKey: true };
  }

  /**
   * Backs up history and contacts: encrypted and authenticated here under
   * keys derived from the recovery key, uploaded (resuming if cut) as the
   * account's newest version. The directory learns the recovery credential
   * that lets a new device take the account over; with a password, the vault
   * keeps the recovery key sealed under it. Returns the recovery key, which
   * is all a new device needs.
   */
  async create(options: {
    password?: string;
    onProgress?: (progress: TransferProgress) => void;
    onBusy?: (wait: BusyWait) => void;
  }): Promise<CreatedBackup> {
    const { recoveryKey, newRecoveryKey } = this.recoveryKey();
    const { accounts, backups, vault, auth } = this.connection;
    // Once set, the credential can be replaced only by presenting the current one. Ours derives
    // from the recovery key, so presenting it proves the key: every backup under the same key
    // (and every restored device, which keeps the key) passes; a device secret alone does not.
    const credential = Buffer.from(deriveAccountRecoveryCredential(recoveryKey));
    await this.connection
      .call(accounts.setRecoveryCredential.bind(accounts), {
        recoveryCredential: credential,
        currentRecoveryCredential: credential,
      })
      .catch((error: unknown) => {
        throw error instanceof SottoError && error.code === status.PERMISSION_DENIED
          ? new SottoError(
              newRecoveryKey
                ? 'this account already has a recovery key, which this device does not hold; back up from a device that holds it'
                : "the recovery key this device holds is not the account's; back up from a device that holds the account's",
              error.code,
            )
          : error;
      });
    if (newRecoveryKey) keepRecoveryKey(this.profile, recoveryKey);
    const explained = (error: unknown) => Promise.reject(this.connection.explain(error));
    return withTemporaryFile('sotto-backup-', async (path) => {
      const digest = await writeBackupFile(
        path,
        collectBackup(this.profile),
        deriveBackupFileKeys(recoveryKey, this.accountId),
      );
      const version = await uploadBackupFile({
        client: backups,
        metadata: auth,
        path,
        size: digest.size,
        sha256: digest.sha256,
        onProgress: options.onProgress,
        onBusy: options.onBusy,
      }).catch(explained);
      if (options.password !== undefined) {
        await protectRecoveryKey({
          client: vault,
          metadata: auth,
          recoveryKey,
          password: options.password,
        }).catch(explained);
      }
      return { recoveryKey, newRecoveryKey, version, passwordProtected: options.password !== undefined };
    });
  }

  /** The account's backups (newest first), quota and whether a password vault guards the recovery key. */
  status(): Promise<GetBackupStatusResponse> {
    return this.connection.call(this.connection.backups.getBackupStatus.bind(this.connection.backups), {});
  }

  /**
   * Clears the count of failed password tries on this account's vault: 10
   * tries again, no wait, and the reports stop. Allowed once a day.
   */
  async resetVaultAttempts(): Promise<VaultStatus> {
    const { vault } = this.connection;
    const { vault: status } = await this.connection.call(vault.resetVaultAttempts.bind(vault), {});
    if (!status) throw new SottoError('the server did not say how the vault stands');
    return status;
  }

  /**
   * Downloads the newest backup, checks it whole and restores its history and
   * contacts into this device's profile, which must hold none yet.
   */
  restoreNewest(
    recoveryKey: RecoveryKey,
    onProgress?: (progress: TransferProgress) => void,
  ): Promise<{ historyEntries: number; version: BackupVersion }> {
    return withTemporaryFile('sotto-restore-', async (path) => {
      try {
        const version = await downloadBackupFile({
          client: this.connection.backups,
          metadata: this.connection.auth,
          path,
          onProgress,
        });
        const opened = await openBackupFile(path, deriveBackupFileKeys(recoveryKey, this.accountId));
        const restored = await restoreProfile(this.profile, opened);
        return { historyEntries: restored.historyEntries, version };
      } catch (error) {
        const reason = this.connection.explain(error);
        throw new SottoError(
          `the account is on this device now, but its backup could not be restored: ${reason.message}`,
          reason instanceof SottoError ? reason.code : undefined,
        );
      }
    });
  }
}
