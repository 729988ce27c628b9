import { randomBytes } from 'node:crypto';
import { createTestHsmToken } from '@sotto/testing';
import { Pkcs11Token, UnsealError } from './pkcs11-token';
import { Sealer } from './sealer';

describe('Sealer on a SoftHSM2 token', () => {
  let token: Pkcs11Token;
  let sealer: Sealer;
  const label = `sealer-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    token = Pkcs11Token.open(await createTestHsmToken(`spec-${randomBytes(4).toString('hex')}`));
    sealer = new Sealer(token, token.generateKey(label));
  });

  afterAll(() => token?.close());

  it('opens what it sealed, for the same context', () => {
    const secret = randomBytes(100);
    const sealed = sealer.seal(secret, 'ctx/a');
    expect(sealed).toHaveLength(1 + 12 + 100 + 16);
    expect(sealed.includes(secret.subarray(0, 16))).toBe(false);
    expect(sealer.unseal(sealed, 'ctx/a')).toEqual(secret);
    // A fresh IV every time: the same secret never seals to the same bytes.
    expect(sealer.seal(secret, 'ctx/a').equals(sealed)).toBe(false);
  });

  it('refuses another context, a flipped bit, a cut blob and an unknown format', () => {
    const sealed = sealer.seal(Buffer.from('recovery key'), 'sotto.vault.v1/sealed-recovery-key/a/1');
    expect(() => sealer.unseal(sealed, 'sotto.vault.v1/sealed-recovery-key/b/1')).toThrow(UnsealError);
    for (const index of [1, 13, sealed.length - 1]) {
      const flipped = Buffer.from(sealed);
      flipped[index] = (flipped[index] ?? 0) ^ 1;
      expect(() => sealer.unseal(flipped, 'sotto.vault.v1/sealed-recovery-key/a/1')).toThrow(UnsealError);
    }
    expect(() => sealer.unseal(sealed.subarray(0, 20), 'sotto.vault.v1/sealed-recovery-key/a/1')).toThrow(
      'is not a sealed blob of a known format',
    );
    const otherVersion = Buffer.from(sealed);
    otherVersion[0] = 2;
    expect(() => sealer.unseal(otherVersion, 'sotto.vault.v1/sealed-recovery-key/a/1')).toThrow(UnsealError);
  });

  it('keeps its key inside the token: sensitive, not extractable, found again by label', () => {
    const [key] = token.findKeys(label);
    expect(key?.id).toEqual(sealer.key.id);
    expect(token.isLockedDown(sealer.key)).toBe(true);
  });

  it('cannot open what another key of the same label sealed', () => {
    const twin = new Sealer(token, token.generateKey(label));
    expect(() => twin.unseal(sealer.seal(Buffer.from('x'), 'ctx'), 'ctx')).toThrow(UnsealError);
    expect(token.findKeys(label)).toHaveLength(2);
  });
});
