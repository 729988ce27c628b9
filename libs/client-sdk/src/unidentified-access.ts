import { createCipheriv } from 'node:crypto';
import { SottoError } from './errors';

/** A profile key: 32 random bytes, shared with contacts inside encrypted messages. */
export const PROFILE_KEY_BYTES = 32;
/** An unidentified-access key, as the gateway's SetUnidentifiedAccess and SendSealed take it. */
export const UNIDENTIFIED_ACCESS_KEY_BYTES = 16;

/**
 * The unidentified-access key that lets the holders of `profileKey` send this
 * account sealed messages, derived as Signal does: the first 16 bytes of
 * AES-256-GCM of 16 zero bytes under the profile key, with a zero IV. Anyone
 * who learned the profile key can derive it; the server only compares it.
 */
export function deriveUnidentifiedAccessKey(profileKey: Uint8Array): Uint8Array {
  if (profileKey.length !== PROFILE_KEY_BYTES) {
    throw new SottoError(`a profile key is ${PROFILE_KEY_BYTES} bytes, not ${profileKey.length}`);
  }
  const cipher = createCipheriv('aes-256-gcm', profileKey, Buffer.alloc(12));
  const ciphertext = Buffer.concat([
    cipher.update(Buffer.alloc(UNIDENTIFIED_ACCESS_KEY_BYTES)),
    cipher.final(),
  ]);
  return new Uint8Array(ciphertext.subarray(0, UNIDENTIFIED_ACCESS_KEY_BYTES));
}
