import {
  Direction,
  IdentityChange,
  IdentityKeyPair,
  IdentityKeyStore,
  KyberPreKeyRecord,
  KyberPreKeyStore,
  PreKeyRecord,
  PreKeyStore,
  PrivateKey,
  ProtocolAddress,
  PublicKey,
  SessionRecord,
  SessionStore,
  SignedPreKeyRecord,
  SignedPreKeyStore,
} from '@signalapp/libsignal-client';
import type { Profile } from './profile';

function bytes(buffer: Buffer): Uint8Array<ArrayBuffer> {
  return new Uint8Array(buffer);
}

function addressFile(dir: string, address: ProtocolAddress): string {
  return `${dir}/${address.name()}.${address.deviceId()}`;
}

export class ProfileSessionStore extends SessionStore {
  constructor(private readonly profile: Profile) {
    super();
  }

  saveSession(name: ProtocolAddress, record: SessionRecord): Promise<void> {
    this.profile.write(addressFile('sessions', name), record.serialize());
    return Promise.resolve();
  }

  getSession(name: ProtocolAddress): Promise<SessionRecord | null> {
    const data = this.profile.read(addressFile('sessions', name));
    return Promise.resolve(data ? SessionRecord.deserialize(bytes(data)) : null);
  }

  async getExistingSessions(addresses: ProtocolAddress[]): Promise<SessionRecord[]> {
    const records = await Promise.all(addresses.map((address) => this.getSession(address)));
    return records.map((record, index) => {
      if (!record) throw new Error(`no session for ${addresses[index]?.toString()}`);
      return record;
    });
  }

  deleteSession(name: ProtocolAddress): void {
    this.profile.remove(addressFile('sessions', name));
  }
}

/**
 * Trust on first use. A contact's identity key that changes is accepted, as
 * Signal does for unverified contacts, but never silently: the change is
 * reported so it lands in history as a safety-number change.
 */
export class ProfileIdentityStore extends IdentityKeyStore {
  constructor(
    private readonly profile: Profile,
    private readonly identity: IdentityKeyPair,
    private readonly registrationId: number,
    private readonly onChange: (address: ProtocolAddress) => void,
  ) {
    super();
  }

  getIdentityKey(): Promise<PrivateKey> {
    return Promise.resolve(this.identity.privateKey);
  }

  getLocalRegistrationId(): Promise<number> {
    return Promise.resolve(this.registrationId);
  }

  async saveIdentity(name: ProtocolAddress, key: PublicKey): Promise<IdentityChange> {
    const known = await this.getIdentity(name);
    this.profile.write(`identities/${name.name()}`, key.serialize());
    if (known && !known.equals(key)) {
      this.onChange(name);
      return IdentityChange.ReplacedExisting;
    }
    return IdentityChange.NewOrUnchanged;
  }

  isTrustedIdentity(_name: ProtocolAddress, _key: PublicKey, _direction: Direction): Promise<boolean> {
    return Promise.resolve(true);
  }

  getIdentity(name: ProtocolAddress): Promise<PublicKey | null> {
    const data = this.profile.read(`identities/${name.name()}`);
    return Promise.resolve(data ? PublicKey.deserialize(bytes(data)) : null);
  }
}

export class ProfilePreKeyStore extends PreKeyStore {
  constructor(private readonly profile: Profile) {
    super();
  }

  savePreKey(id: number, record: PreKeyRecord): Promise<void> {
    this.profile.write(`prekeys/${id}`, record.serialize());
    return Promise.resolve();
  }

  getPreKey(id: number): Promise<PreKeyRecord> {
    const data = this.profile.read(`prekeys/${id}`);
    if (!data) return Promise.reject(new Error(`no one-time prekey ${id}`));
    return Promise.resolve(PreKeyRecord.deserialize(bytes(data)));
  }

  removePreKey(id: number): Promise<void> {
    this.profile.remove(`prekeys/${id}`);
    return Promise.resolve();
  }
}

export class ProfileSignedPreKeyStore extends SignedPreKeyStore {
  constructor(private readonly profile: Profile) {
    super();
  }

  saveSignedPreKey(id: number, record: SignedPreKeyRecord): Promise<void> {
    this.profile.write(`signed-prekeys/${id}`, record.serialize());
    return Promise.resolve();
  }

  getSignedPreKey(id: number): Promise<SignedPreKeyRecord> {
    const data = this.profile.read(`signed-prekeys/${id}`);
    if (!data) return Promise.reject(new Error(`no signed prekey ${id}`));
    return Promise.resolve(SignedPreKeyRecord.deserialize(bytes(data)));
  }
}

/** One-time Kyber keys are deleted once used; the last-resort key (id 1) is kept. */
export class ProfileKyberPreKeyStore extends KyberPreKeyStore {
  constructor(
    private readonly profile: Profile,
    private readonly lastResortId: number,
  ) {
    super();
  }

  saveKyberPreKey(id: number, record: KyberPreKeyRecord): Promise<void> {
    this.profile.write(`kyber-prekeys/${id}`, record.serialize());
    return Promise.resolve();
  }

  getKyberPreKey(id: number): Promise<KyberPreKeyRecord> {
    const data = this.profile.read(`kyber-prekeys/${id}`);
    if (!data) return Promise.reject(new Error(`no Kyber prekey ${id}`));
    return Promise.resolve(KyberPreKeyRecord.deserialize(bytes(data)));
  }

  markKyberPreKeyUsed(id: number): Promise<void> {
    if (id !== this.lastResortId) this.profile.remove(`kyber-prekeys/${id}`);
    return Promise.resolve();
  }
}

/** A device's libsignal stores, all kept in its profile. */
export interface SignalStores {
  readonly sessions: ProfileSessionStore;
  readonly identities: ProfileIdentityStore;
  readonly preKeys: ProfilePreKeyStore;
  readonly signedPreKeys: ProfileSignedPreKeyStore;
  readonly kyberPreKeys: ProfileKyberPreKeyStore;
}

export function profileSignalStores(options: {
  profile: Profile;
  identity: IdentityKeyPair;
  registrationId: number;
  lastResortKyberId: number;
  /** Told of a contact whose identity key changed. */
  onIdentityChange: (address: ProtocolAddress) => void;
}): SignalStores {
  const { profile } = options;
  return {
    sessions: new ProfileSessionStore(profile),
    identities: new ProfileIdentityStore(
      profile,
      options.identity,
      options.registrationId,
      options.onIdentityChange,
    ),
    preKeys: new ProfilePreKeyStore(profile),
    signedPreKeys: new ProfileSignedPreKeyStore(profile),
    kyberPreKeys: new ProfileKyberPreKeyStore(profile, options.lastResortKyberId),
  };
}
