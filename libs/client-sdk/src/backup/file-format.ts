import { createHmac, timingSafeEqual } from 'node:crypto';
import { BackupError } from './backup-error';
import type { BackupFileKeys } from './recovery-key';

/**
 * A backup file is
 *
 *   header | AES-256-CBC(gzip(records)) | HMAC-SHA256(header | ciphertext)
 *
 * where the header, in clear, is
 *
 *   magic "SOTTOBAK" (8) | format version (1) | AES-CBC IV (16) | key check (16)
 *
 * and the records are those of frames.ts. The keys are libsignal's
 * MessageBackupKey, and this is the construction Signal's own backups use
 * them for. Encrypt-then-MAC lets the whole file be checked in one cheap pass
 * before a single byte is decrypted, decompressed or parsed; AES-GCM would
 * need a full decryption to learn the tag was wrong, and Node hands out GCM
 * plaintext before it knows. CBC rather than CTR because the keys are the same
 * for every backup of an account: should a random IV ever repeat, CBC leaks
 * little, CTR the XOR of two histories.
 */
export const MAGIC = Buffer.from('SOTTOBAK', 'ascii');
export const FORMAT_VERSION = 1;
export const IV_LENGTH = 16;
const KEY_CHECK_LENGTH = 16;
export const HEADER_LENGTH = MAGIC.length + 1 + IV_LENGTH + KEY_CHECK_LENGTH;
export const TAG_LENGTH = 32;
/** An empty body still has one AES block of padding. */
export const MIN_FILE_LENGTH = HEADER_LENGTH + 16 + TAG_LENGTH;

/**
 * A commitment to the MAC key, so a wrong recovery key is told apart from a
 * damaged file without reading the whole file. The label cannot collide with
 * the tag's input, which starts with the magic.
 */
function keyCheck(keys: BackupFileKeys): Buffer {
  return createHmac('sha256', keys.hmacKey)
    .update('sotto backup key check v1')
    .digest()
    .subarray(0, KEY_CHECK_LENGTH);
}

export function encodeHeader(keys: BackupFileKeys, iv: Uint8Array): Buffer {
  return Buffer.concat([MAGIC, Buffer.from([FORMAT_VERSION]), iv, keyCheck(keys)]);
}

/** Checks what can be checked before the tag: the magic, the version, the length and the key. */
export function checkHeader(header: Buffer, fileLength: number, keys: BackupFileKeys): { iv: Buffer } {
  if (header.length <= MAGIC.length && MAGIC.subarray(0, header.length).equals(header)) {
    throw new BackupError('TRUNCATED', `the backup is truncated: ${fileLength} bytes`);
  }
  if (!header.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new BackupError('NOT_A_BACKUP', 'this file is not a Sotto backup');
  }
  const version = header[MAGIC.length];
  if (version !== FORMAT_VERSION) {
    throw new BackupError(
      'UNSUPPORTED_VERSION',
      `backup format version ${version} is not supported (this client reads version ${FORMAT_VERSION}); update Sotto`,
    );
  }
  if (fileLength < MIN_FILE_LENGTH) {
    throw new BackupError(
      'TRUNCATED',
      `the backup is truncated: ${fileLength} bytes, at least ${MIN_FILE_LENGTH} expected`,
    );
  }
  const check = header.subarray(HEADER_LENGTH - KEY_CHECK_LENGTH, HEADER_LENGTH);
  if (!timingSafeEqual(check, keyCheck(keys))) {
    throw new BackupError(
      'WRONG_KEY',
      'this recovery key does not open this backup (or the backup belongs to another account)',
    );
  }
  return { iv: header.subarray(MAGIC.length + 1, MAGIC.length + 1 + IV_LENGTH) };
}
