import { createCipheriv, randomBytes } from 'node:crypto';
import { deriveUnidentifiedAccessKey } from './unidentified-access';

describe('deriveUnidentifiedAccessKey', () => {
  it("is GCM's first keystream block under the profile key with a zero IV: AES-256 of counter block 2", () => {
    // GCM with a 96-bit IV encrypts the first block with E(K, IV || 0x00000002); with a zero IV and
    // zero plaintext, that block is the ciphertext.
    for (let i = 0; i < 5; i++) {
      const profileKey = randomBytes(32);
      const counterBlock = Buffer.alloc(16);
      counterBlock[15] = 2;
      const ecb = createCipheriv('aes-256-ecb', profileKey, null).setAutoPadding(false);
      const expected = Buffer.concat([ecb.update(counterBlock), ecb.final()]);
      expect(Buffer.from(deriveUnidentifiedAccessKey(profileKey))).toEqual(expected);
    }
  });

  it('gives 16 bytes, the same for the same profile key and different ones for different keys', () => {
    const profileKey = randomBytes(32);
    const key = deriveUnidentifiedAccessKey(profileKey);
    expect(key).toHaveLength(16);
    expect(deriveUnidentifiedAccessKey(Buffer.from(profileKey))).toEqual(key);
    expect(deriveUnidentifiedAccessKey(randomBytes(32))).not.toEqual(key);
  });

  it('refuses a profile key that is not 32 bytes', () => {
    expect(() => deriveUnidentifiedAccessKey(randomBytes(16))).toThrow('a profile key is 32 bytes, not 16');
    expect(() => deriveUnidentifiedAccessKey(new Uint8Array())).toThrow('a profile key is 32 bytes, not 0');
  });
});
