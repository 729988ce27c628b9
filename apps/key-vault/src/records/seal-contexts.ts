import type { AccountId } from '@sotto/platform/ids';

// What each sealed column is bound to: a blob moved to another account, another
// registration or another column does not open.

export function recordContext(accountId: AccountId, credentialIdentifier: Buffer): string {
  return `sotto.vault.v1/opaque-record/${accountId}/${credentialIdentifier.toString('base64url')}`;
}

export function recoveryKeyContext(accountId: AccountId, credentialIdentifier: Buffer): string {
  return `sotto.vault.v1/sealed-recovery-key/${accountId}/${credentialIdentifier.toString('base64url')}`;
}
