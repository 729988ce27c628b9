import { hashDeviceSecret, isDeviceSecret, newDeviceSecret, verifyDeviceSecret } from './credentials';
import { canonicalUsername } from './username';

describe('device credentials', () => {
  it('accepts the secret it was made from and nothing else', () => {
    const secret = newDeviceSecret();
    const stored = hashDeviceSecret(secret);
    expect(verifyDeviceSecret(secret, stored)).toBe(true);
    expect(verifyDeviceSecret(`${secret}x`, stored)).toBe(false);
    expect(verifyDeviceSecret(newDeviceSecret(), stored)).toBe(false);
    expect(verifyDeviceSecret(secret, undefined)).toBe(false);
  });

  it('salts every hash, and keeps no trace of the secret', () => {
    const secret = newDeviceSecret();
    const a = hashDeviceSecret(secret);
    const b = hashDeviceSecret(secret);
    expect(Buffer.from(a.hash).equals(Buffer.from(b.hash))).toBe(false);
    expect(Buffer.from(a.hash).toString('base64url')).not.toContain(secret);
    expect(Buffer.from(secret, 'base64url')).toHaveLength(32);
  });
});

describe('isDeviceSecret', () => {
  it('accepts what newDeviceSecret makes', () => {
    for (let i = 0; i < 20; i++) expect(isDeviceSecret(newDeviceSecret())).toBe(true);
  });

  it.each([
    ['too short', 'A'.repeat(42)],
    ['too long', 'A'.repeat(44)],
    ['padded', `${'A'.repeat(43)}=`],
    ['not base64url', `${'A'.repeat(42)}+`],
    ['stray low bits in the last character', `${'A'.repeat(42)}B`],
    ['empty', ''],
  ])('refuses a secret that is %s', (_why, secret) => {
    expect(isDeviceSecret(secret)).toBe(false);
  });
});

describe('canonicalUsername', () => {
  it.each([
    ['Alice', 'alice'],
    ['bob_99', 'bob_99'],
    ['a.b', 'a.b'],
    ['x'.repeat(32), 'x'.repeat(32)],
  ])('%s becomes %s', (input, canonical) => {
    expect(canonicalUsername(input)).toBe(canonical);
  });

  it.each(['ab', 'x'.repeat(33), 'has space', 'émile', 'semi;colon', ''])('refuses %p', (input) => {
    expect(() => canonicalUsername(input)).toThrow(
      "username: must be 3 to 32 characters of a-z, 0-9, '_' and '.'",
    );
  });
});
