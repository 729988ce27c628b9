import { randomUUID } from 'node:crypto';
import {
  IdentityChange,
  IdentityKeyPair,
  ProtocolAddress,
  SenderKeyDistributionMessage,
  groupDecrypt,
  groupEncrypt,
  processSenderKeyDistributionMessage,
} from '@signalapp/libsignal-client';
import { MemoryIdentityStore, MemorySenderKeyStore, MemorySessionStore } from './signal-stores';

describe('libsignal stores in memory', () => {
  const bob = ProtocolAddress.new(randomUUID(), 1);
  const first = IdentityKeyPair.generate().publicKey;
  const second = IdentityKeyPair.generate().publicKey;

  it('trusts a key on first use, then only that key, and says when it was replaced', async () => {
    const identities = new MemoryIdentityStore(IdentityKeyPair.generate().privateKey, 42);
    expect(await identities.getLocalRegistrationId()).toBe(42);
    expect(await identities.getIdentity(bob)).toBeNull();
    expect(await identities.isTrustedIdentity(bob, first)).toBe(true);
    expect(await identities.saveIdentity(bob, first)).toBe(IdentityChange.NewOrUnchanged);
    expect(await identities.isTrustedIdentity(bob, first)).toBe(true);
    expect(await identities.isTrustedIdentity(bob, second)).toBe(false);
    expect(await identities.saveIdentity(bob, second)).toBe(IdentityChange.ReplacedExisting);
    expect((await identities.getIdentity(bob))?.equals(second)).toBe(true);
  });

  it('trusts every key when told to, remembering the last one it was shown', async () => {
    const identities = new MemoryIdentityStore(IdentityKeyPair.generate().privateKey, 1, 'any');
    await identities.saveIdentity(bob, first);
    expect(await identities.isTrustedIdentity(bob, second)).toBe(true);
    await identities.saveIdentity(bob, second);
    expect((await identities.getIdentity(bob))?.equals(second)).toBe(true);
  });

  it('has no session for an address it was not given one for', async () => {
    const sessions = new MemorySessionStore();
    expect(await sessions.getSession(bob)).toBeNull();
    expect(await sessions.getExistingSessions([bob])).toEqual([]);
  });

  it('keeps sender keys by sender and distribution: a group message goes from one store to another', async () => {
    const alice = ProtocolAddress.new(randomUUID(), 1);
    const distributionId = randomUUID();
    const hers = new MemorySenderKeyStore();
    const his = new MemorySenderKeyStore();
    const distribution = await SenderKeyDistributionMessage.create(alice, distributionId, hers);
    await processSenderKeyDistributionMessage(alice, distribution, his);
    const sent = await groupEncrypt(alice, distributionId, hers, new Uint8Array(Buffer.from('to the group')));
    expect(Buffer.from(await groupDecrypt(alice, his, sent.serialize())).toString()).toBe('to the group');
    expect(await his.getSenderKey(alice, randomUUID())).toBeNull();
  });
});
