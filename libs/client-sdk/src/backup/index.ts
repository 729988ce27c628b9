export { BackupError, type BackupErrorCode } from './backup-error';
export {
  type RecoveryKey,
  type BackupFileKeys,
  generateRecoveryKey,
  parseRecoveryKey,
  deriveAccountRecoveryCredential,
  deriveVaultRecoveryProof,
  deriveBackupFileKeys,
} from './recovery-key';
export type { BackupAccount, BackupContact, BackupContents } from './contents';
export { type BackupFileDigest, writeBackupFile, backupFileDigest } from './write-backup';
export { type OpenedBackup, openBackupFile } from './open-backup';
export { type RestoreSummary, collectBackup, restoreProfile } from './profile-backup';
export { sealRecoveryKey, openSealedRecoveryKey } from './vault-seal';
