import { hkdfSync } from 'node:crypto';
import { Aci } from '@signalapp/libsignal-client';
import { AccountEntropyPool, SvrKey } from '@signalapp/libsignal-client/dist/AccountKeys';
import { MessageBackupKey } from '@signalapp/libsignal-client/dist/MessageBackup';
import { BackupError } from './backup-error';

/** A validated, canonical (lower-case, 64 characters) libsignal account entropy pool. */
export type RecoveryKey = string & { readonly __brand: 'RecoveryKey' };

const LENGTH = 64;

/**
 * The key-vault keeps a salted hash of this proof to let the recovery key
 * authorise a password change; the label is the one vault.proto names.
 */
export const VAULT_RECOVERY_PROOF_LABEL = 'sotto vault recovery proof v1';

export interface BackupFileKeys {
  readonly aesKey: Uint8Array;
  readonly hmacKey: Uint8Array;
}

export function generateRecoveryKey(): RecoveryKey {
  return AccountEntropyPool.generate() as RecoveryKey;
}

/**
 * Accepts a key as a person types it: any case, with spaces, line breaks or
 * dashes between groups. Anything else is refused with what is wrong.
 */
export function parseRecoveryKey(typed: string): RecoveryKey {
  const candidate = typed.replace(/[\s-]/g, '').toLowerCase();
  const stray = /[^a-z0-9]/.exec(candidate);
  if (stray) {
    throw new BackupError(
      'INVALID_RECOVERY_KEY',
      `a recovery key has only letters and digits; "${stray[0]}" is not one`,
    );
  }
  if (candidate.length !== LENGTH) {
    throw new BackupError(
      'INVALID_RECOVERY_KEY',
      `a recovery key has ${LENGTH} letters and digits; this one has ${candidate.length}`,
    );
  }
  if (!AccountEntropyPool.isValid(candidate)) {
    throw new BackupError('INVALID_RECOVERY_KEY', 'this is not a valid recovery key');
  }
  return candidate as RecoveryKey;
}

/**
 * What a new device presents to recover the account; the directory keeps a
 * salted hash. It is libsignal's registration recovery password, which
 * Signal uses for exactly this, derived through the SVR key.
 */
export function deriveAccountRecoveryCredential(key: RecoveryKey): Uint8Array {
  return new SvrKey(AccountEntropyPool.deriveSvrKey(key)).deriveRegistrationRecoveryPassword();
}

/** Proves the recovery key to the key-vault when changing the password without the old one. */
export function deriveVaultRecoveryProof(key: RecoveryKey): Uint8Array {
  // HKDF over the pool's characters, as libsignal derives its own keys, with a label of ours.
  return new Uint8Array(
    hkdfSync('sha256', Buffer.from(key, 'ascii'), new Uint8Array(0), VAULT_RECOVERY_PROOF_LABEL, 32),
  );
}

/**
 * The backup file's AES-256 and HMAC-SHA256 keys: libsignal's message backup
 * key, bound to the account, so a backup of one account never opens as
 * another's even under the same recovery key.
 */
export function deriveBackupFileKeys(key: RecoveryKey, accountId: string): BackupFileKeys {
  let aci: Aci;
  try {
    aci = Aci.fromUuid(accountId);
  } catch {
    throw new BackupError('INVALID_ACCOUNT_ID', `account id ${JSON.stringify(accountId)} is not a UUID`);
  }
  const messageBackupKey = new MessageBackupKey({ accountEntropy: key, aci });
  return { aesKey: messageBackupKey.aesKey, hmacKey: messageBackupKey.hmacKey };
}
