import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** What the directory keeps of a device secret: never the secret itself. */
export interface StoredCredential {
  readonly salt: Uint8Array;
  readonly hash: Uint8Array;
}

/** A new device secret: 32 random bytes, shown to the device once. */
export function newDeviceSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** Whether a secret a client made has the form of ours: 32 bytes in unpadded base64url. */
export function isDeviceSecret(secret: string): boolean {
  // Canonical: decoding and encoding again gives the same text, so no stray characters or bits.
  const bytes = Buffer.from(secret, 'base64url');
  return bytes.length === 32 && bytes.toString('base64url') === secret;
}

/**
 * Device secrets carry 256 bits of entropy, so a salted SHA-256 is enough:
 * there is nothing to brute-force, and authentication stays cheap.
 */
export function hashDeviceSecret(secret: string, salt: Uint8Array = randomBytes(16)): StoredCredential {
  const hash = createHash('sha256').update(salt).update(secret, 'utf8').digest();
  return { salt, hash };
}

// Compared against when the device does not exist, so that a miss costs the same as a wrong secret.
const DECOY = hashDeviceSecret(newDeviceSecret());

/** Constant-time check of a presented secret against what is stored (or nothing). */
export function verifyDeviceSecret(secret: string, stored: StoredCredential | undefined): boolean {
  const against = stored ?? DECOY;
  const presented = hashDeviceSecret(secret, against.salt).hash;
  return timingSafeEqual(presented, against.hash) && stored !== undefined;
}
