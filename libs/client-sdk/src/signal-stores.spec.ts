import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Direction, IdentityChange, IdentityKeyPair, ProtocolAddress } from '@signalapp/libsignal-client';
import { Profile } from './profile';
import { ProfileIdentityStore } from './signal-stores';

const ALICE = '0190a1b2-0000-7000-8000-000000000001';

describe('ProfileIdentityStore: trust on first use, then no silent change', () => {
  let dir: string;
  let store: ProfileIdentityStore;
  let reported: string[];
  const alice = ProtocolAddress.new(ALICE, 1);
  const original = IdentityKeyPair.generate().publicKey;
  const replacement = IdentityKeyPair.generate().publicKey;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sotto-identities-'));
    reported = [];
    store = new ProfileIdentityStore(Profile.create(dir), IdentityKeyPair.generate(), 7, (address) =>
      reported.push(address.toString()),
    );
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const trustedForSending = (key = replacement) => store.isTrustedIdentity(alice, key, Direction.Sending);

  it('trusts the first key seen for a contact, without a report', async () => {
    expect(await store.isTrustedIdentity(alice, original, Direction.Sending)).toBe(true);
    expect(await store.saveIdentity(alice, original)).toBe(IdentityChange.NewOrUnchanged);
    expect(store.accepted(ALICE)?.equals(original)).toBe(true);
    expect(await trustedForSending(original)).toBe(true);
    expect(reported).toEqual([]);
  });

  it('records a different key beside the accepted one, reports it once, and never encrypts to it', async () => {
    await store.saveIdentity(alice, original);
    expect(await store.saveIdentity(alice, replacement)).toBe(IdentityChange.ReplacedExisting);
    expect(await store.saveIdentity(ProtocolAddress.new(ALICE, 2), replacement)).toBe(
      IdentityChange.ReplacedExisting,
    );
    expect(reported).toEqual([alice.toString()]);

    expect(store.accepted(ALICE)?.equals(original)).toBe(true);
    expect(store.changed(ALICE)?.equals(replacement)).toBe(true);
    expect(await trustedForSending()).toBe(false);
    // What the contact sends is still read; the inbox shows it with a warning.
    expect(await store.isTrustedIdentity(alice, replacement, Direction.Receiving)).toBe(true);
    // The safety number shown is the new key's: that is what the user compares.
    expect((await store.getIdentity(alice))?.equals(replacement)).toBe(true);
  });

  it('encrypts to the new key once it is accepted, and only then', async () => {
    await store.saveIdentity(alice, original);
    expect(store.accept(ALICE)).toBe(false);
    await store.saveIdentity(alice, replacement);
    expect(store.accept(ALICE)).toBe(true);
    expect(await trustedForSending()).toBe(true);
    expect(await trustedForSending(original)).toBe(false);
    expect(store.changed(ALICE)).toBeNull();
    expect(await store.saveIdentity(alice, replacement)).toBe(IdentityChange.NewOrUnchanged);
  });

  it('reports every further change, and forgets one the contact went back from', async () => {
    const third = IdentityKeyPair.generate().publicKey;
    await store.saveIdentity(alice, original);
    await store.saveIdentity(alice, replacement);
    await store.saveIdentity(alice, third);
    expect(reported).toHaveLength(2);
    expect(store.changed(ALICE)?.equals(third)).toBe(true);

    await store.saveIdentity(alice, original);
    expect(store.changed(ALICE)).toBeNull();
    expect(await trustedForSending(original)).toBe(true);
  });

  it('keeps what it learned in the profile, for the next run', async () => {
    await store.saveIdentity(alice, original);
    await store.saveIdentity(alice, replacement);
    const again = new ProfileIdentityStore(new Profile(dir), IdentityKeyPair.generate(), 7, () => undefined);
    expect(await again.isTrustedIdentity(alice, replacement, Direction.Sending)).toBe(false);
    expect(again.changed(ALICE)?.equals(replacement)).toBe(true);
  });
});
