import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** What the vault keeps of a recovery proof: never the proof itself. */
export interface HashedRecoveryProof {
  readonly salt: Buffer;
  readonly hash: Buffer;
}

/**
 * The proof is derived from the recovery key (about 330 bits), so a salted
 * SHA-256 is enough: there is nothing to brute-force.
 */
export function hashRecoveryProof(proof: Uint8Array, salt: Buffer = randomBytes(16)): HashedRecoveryProof {
  return { salt, hash: createHash('sha256').update(salt).update(proof).digest() };
}

export function verifyRecoveryProof(proof: Uint8Array, stored: HashedRecoveryProof): boolean {
  return timingSafeEqual(hashRecoveryProof(proof, stored.salt).hash, stored.hash);
}
