import { IdentityKeyPair } from '@signalapp/libsignal-client';
import { safetyNumber } from './safety-number';

describe('safetyNumber', () => {
  const alice = {
    accountId: '0190a1b2-0000-7000-8000-000000000001',
    identityKey: IdentityKeyPair.generate().publicKey,
  };
  const bob = {
    accountId: '0190a1b2-0000-7000-8000-000000000002',
    identityKey: IdentityKeyPair.generate().publicKey,
  };

  it('is 60 digits, the same whichever side computes it', () => {
    const fromAlice = safetyNumber(alice, bob);
    expect(fromAlice).toMatch(/^\d{60}$/);
    expect(safetyNumber(bob, alice)).toBe(fromAlice);
  });

  it('changes when either identity key changes', () => {
    const before = safetyNumber(alice, bob);
    const newKey = IdentityKeyPair.generate().publicKey;
    expect(safetyNumber(alice, { ...bob, identityKey: newKey })).not.toBe(before);
    expect(safetyNumber({ ...alice, identityKey: newKey }, bob)).not.toBe(before);
  });
});
