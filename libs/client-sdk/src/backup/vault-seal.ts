import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { BackupError } from './backup-error';
import { parseRecoveryKey, type RecoveryKey } from './recovery-key';

/*
 * The recovery key as the key-vault keeps it, sealed under the OPAQUE export
 * key that only the right password yields:
 *
 *   version (1) | nonce (12) | AES-256-GCM ciphertext (64) | tag (16)
 *
 * The AES key is HKDF-SHA256 of the export key with its own label, so the
 * export key is never used directly; the version byte is authenticated.
 */
const SEAL_VERSION = 1;
export const VAULT_SEAL_LABEL = 'sotto vault sealed recovery key v1';
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;

/** @serenity-kit/opaque hands the export key over as base64url. */
function sealKey(exportKey: string): Buffer {
  const ikm = Buffer.from(exportKey, 'base64url');
  if (ikm.length !== 64) throw new Error(`an OPAQUE export key has 64 bytes, not ${ikm.length}`);
  return Buffer.from(hkdfSync('sha256', ikm, new Uint8Array(0), VAULT_SEAL_LABEL, 32));
}

export function sealRecoveryKey(key: RecoveryKey, exportKey: string): Uint8Array {
  const version = Buffer.from([SEAL_VERSION]);
  const nonce = randomBytes(NONCE_LENGTH);
  const cipher = createCipheriv('aes-256-gcm', sealKey(exportKey), nonce).setAAD(version);
  const ciphertext = Buffer.concat([cipher.update(key, 'ascii'), cipher.final()]);
  return new Uint8Array(Buffer.concat([version, nonce, ciphertext, cipher.getAuthTag()]));
}

export function openSealedRecoveryKey(sealed: Uint8Array, exportKey: string): RecoveryKey {
  const data = Buffer.from(sealed);
  if (data.length > 0 && data[0] !== SEAL_VERSION) {
    throw new BackupError(
      'UNSUPPORTED_VERSION',
      `the password-protected recovery key has format ${data[0]}, unknown to this client; update Sotto`,
    );
  }
  if (data.length < 1 + NONCE_LENGTH + TAG_LENGTH) {
    throw new BackupError('SEALED_KEY_INVALID', 'the password-protected recovery key is truncated');
  }
  const nonce = data.subarray(1, 1 + NONCE_LENGTH);
  const decipher = createDecipheriv('aes-256-gcm', sealKey(exportKey), nonce)
    .setAAD(data.subarray(0, 1))
    .setAuthTag(data.subarray(data.length - TAG_LENGTH));
  let plaintext: Buffer;
  try {
    plaintext = Buffer.concat([
      decipher.update(data.subarray(1 + NONCE_LENGTH, data.length - TAG_LENGTH)),
      decipher.final(),
    ]);
  } catch {
    throw new BackupError(
      'SEALED_KEY_INVALID',
      'the password-protected recovery key does not open with this password; use the recovery key',
    );
  }
  return parseRecoveryKey(plaintext.toString('ascii'));
}
