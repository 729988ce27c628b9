/**
 * Why a backup, a recovery key or a sealed recovery key was refused. Each
 * code names one thing a person can act on: retype the key, fetch the file
 * again, update the app, or restore into an empty profile.
 */
export type BackupErrorCode =
  /** The typed recovery key is not 64 letters and digits. */
  | 'INVALID_RECOVERY_KEY'
  /** The account id the keys are bound to is not a UUID. */
  | 'INVALID_ACCOUNT_ID'
  /** The file does not start like a Sotto backup. */
  | 'NOT_A_BACKUP'
  /** A backup or sealed key format this client does not know. */
  | 'UNSUPPORTED_VERSION'
  /** Shorter than the smallest possible backup. */
  | 'TRUNCATED'
  /** The recovery key (or account) does not open this backup. */
  | 'WRONG_KEY'
  /** The authentication tag does not match: altered, cut or extended. */
  | 'DAMAGED'
  /** Authentic but unreadable contents: written by a broken or newer client. */
  | 'MALFORMED'
  /** The target profile already holds history, contacts or another account. */
  | 'PROFILE_NOT_EMPTY'
  /** The password-protected recovery key does not open with this export key. */
  | 'SEALED_KEY_INVALID';

export class BackupError extends Error {
  constructor(
    readonly code: BackupErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'BackupError';
  }
}
