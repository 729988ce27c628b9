import {
  IdentityChange,
  IdentityKeyStore,
  SenderKeyRecord,
  SenderKeyStore,
  SessionRecord,
  SessionStore,
  type PrivateKey,
  type ProtocolAddress,
  type PublicKey,
  type Uuid,
} from '@signalapp/libsignal-client';

/*
 * libsignal's stores in memory, for tests that play a client (or an attacker) with the generated
 * gRPC clients and libsignal alone, without a profile on disk.
 */

/** Sessions by address, kept serialized as a real store keeps them. */
export class MemorySessionStore extends SessionStore {
  private readonly records = new Map<string, Uint8Array<ArrayBuffer>>();

  saveSession(name: ProtocolAddress, record: SessionRecord): Promise<void> {
    this.records.set(name.toString(), record.serialize());
    return Promise.resolve();
  }

  getSession(name: ProtocolAddress): Promise<SessionRecord | null> {
    const data = this.records.get(name.toString());
    return Promise.resolve(data ? SessionRecord.deserialize(data) : null);
  }

  async getExistingSessions(addresses: ProtocolAddress[]): Promise<SessionRecord[]> {
    const records = await Promise.all(addresses.map((address) => this.getSession(address)));
    return records.filter((record) => record !== null);
  }
}

/**
 * The local identity, and the identity keys of others as first seen (remembered by account):
 * trusted on first use and refused once changed, as a careful client does with nobody to ask, or
 * (`trust: 'any'`) every key trusted, as an attacker or a test that plays the server's side does.
 */
export class MemoryIdentityStore extends IdentityKeyStore {
  private readonly known = new Map<string, PublicKey>();

  constructor(
    private readonly identity: PrivateKey,
    private readonly registrationId: number,
    private readonly trust: 'first-use' | 'any' = 'first-use',
  ) {
    super();
  }

  getIdentityKey(): Promise<PrivateKey> {
    return Promise.resolve(this.identity);
  }

  getLocalRegistrationId(): Promise<number> {
    return Promise.resolve(this.registrationId);
  }

  saveIdentity(name: ProtocolAddress, key: PublicKey): Promise<IdentityChange> {
    const before = this.known.get(name.name());
    this.known.set(name.name(), key);
    return Promise.resolve(
      before === undefined || before.equals(key)
        ? IdentityChange.NewOrUnchanged
        : IdentityChange.ReplacedExisting,
    );
  }

  isTrustedIdentity(name: ProtocolAddress, key: PublicKey): Promise<boolean> {
    const known = this.known.get(name.name());
    return Promise.resolve(this.trust === 'any' || known === undefined || known.equals(key));
  }

  getIdentity(name: ProtocolAddress): Promise<PublicKey | null> {
    return Promise.resolve(this.known.get(name.name()) ?? null);
  }
}

/** Sender keys (groups), by sender address and distribution id. */
export class MemorySenderKeyStore extends SenderKeyStore {
  private readonly records = new Map<string, Uint8Array<ArrayBuffer>>();

  saveSenderKey(sender: ProtocolAddress, distributionId: Uuid, record: SenderKeyRecord): Promise<void> {
    this.records.set(`${sender.toString()}/${distributionId}`, record.serialize());
    return Promise.resolve();
  }

  getSenderKey(sender: ProtocolAddress, distributionId: Uuid): Promise<SenderKeyRecord | null> {
    const data = this.records.get(`${sender.toString()}/${distributionId}`);
    return Promise.resolve(data ? SenderKeyRecord.deserialize(data) : null);
  }
}
