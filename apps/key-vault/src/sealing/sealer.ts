import { randomBytes } from 'node:crypto';
import { GCM_IV_BYTES, GCM_TAG_BYTES, UnsealError, type Pkcs11Token, type TokenKey } from './pkcs11-token';

const FORMAT_V1 = 1;
const HEADER_BYTES = 1 + GCM_IV_BYTES;

/**
 * Seals bytes at rest with the vault's HSM key: AES-256-GCM inside the token,
 * as `version (1) | IV (12) | ciphertext | tag (16)`. Each blob is bound to a
 * context (what it is and whose), so a sealed value copied into another row or
 * another purpose does not open. IVs are random: at 2^-32 collision odds per
 * key that allows billions of seals, far beyond what the vault writes.
 */
export class Sealer {
  constructor(
    private readonly token: Pkcs11Token,
    readonly key: TokenKey,
  ) {}

  seal(plaintext: Uint8Array, context: string): Buffer {
    const iv = randomBytes(GCM_IV_BYTES);
    const body = this.token.encrypt(this.key, iv, Buffer.from(context, 'utf8'), Buffer.from(plaintext));
    return Buffer.concat([Buffer.from([FORMAT_V1]), iv, body]);
  }

  /** Throws UnsealError unless the blob was sealed by this key for this context, unchanged. */
  unseal(sealed: Uint8Array, context: string): Buffer {
    const blob = Buffer.from(sealed);
    if (blob.length < HEADER_BYTES + GCM_TAG_BYTES || blob[0] !== FORMAT_V1) {
      throw new UnsealError('is not a sealed blob of a known format');
    }
    return this.token.decrypt(
      this.key,
      blob.subarray(1, HEADER_BYTES),
      Buffer.from(context, 'utf8'),
      blob.subarray(HEADER_BYTES),
    );
  }
}
