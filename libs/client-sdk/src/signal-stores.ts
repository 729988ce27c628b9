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
  SenderKeyRecord,
  SenderKeyStore,
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

const ACCEPTED = 'identities';
const CHANGED = 'identity-changes';

/**
 * Which identity key this device trusts for each contact account. The first
 * key seen is trusted (trust on first use, as Signal does). A different key
 * later is recorded beside the accepted one and reported, never adopted: it
 * may still be used to read what the contact sends, but nothing is encrypted
 * to it until the user accepts it (`accept`, after comparing safety numbers).
 *
 * `identities/<account>` holds the accepted key (what backups carry);
 * `identity-changes/<account>` a newer key, until it is accepted.
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

  private key(dir: string, accountId: string): PublicKey | null {
    const data = this.profile.read(`${dir}/${accountId}`);
    return data ? PublicKey.deserialize(bytes(data)) : null;
  }

  /** The key trusted for the account: the first seen, or the last accepted. */
  accepted(accountId: string): PublicKey | null {
    return this.key(ACCEPTED, accountId);
  }

  /** A key seen for the account that differs from the accepted one, while it is not accepted. */
  changed(accountId: string): PublicKey | null {
    return this.key(CHANGED, accountId);
  }

  /** Trusts the changed key from now on; false when no key was waiting. */
  accept(accountId: string): boolean {
    const changed = this.changed(accountId);
    if (!changed) return false;
    this.profile.write(`${ACCEPTED}/${accountId}`, changed.serialize());
    this.profile.remove(`${CHANGED}/${accountId}`);
    return true;
  }

  getIdentityKey(): Promise<PrivateKey> {
    return Promise.resolve(this.identity.privateKey);
  }

  getLocalRegistrationId(): Promise<number> {
    return Promise.resolve(this.registrationId);
  }

  saveIdentity(name: ProtocolAddress, key: PublicKey): Promise<IdentityChange> {
    const accountId = name.name();
    const accepted = this.accepted(accountId);
    if (!accepted) {
      this.profile.write(`${ACCEPTED}/${accountId}`, key.serialize());
      return Promise.resolve(IdentityChange.NewOrUnchanged);
    }
    if (accepted.equals(key)) {
      // The contact speaks with the accepted key again; a change seen in between is moot.
      this.profile.remove(`${CHANGED}/${accountId}`);
      return Promise.resolve(IdentityChange.NewOrUnchanged);
    }
    const changed = this.changed(accountId);
    if (!changed?.equals(key)) {
      this.profile.write(`${CHANGED}/${accountId}`, key.serialize());
      this.onChange(name);
    }
    return Promise.resolve(IdentityChange.ReplacedExisting);
  }

  /** What a contact sends is always read; only the accepted key (or a first one) is encrypted to. */
  isTrustedIdentity(name: ProtocolAddress, key: PublicKey, direction: Direction): Promise<boolean> {
    if (direction === Direction.Receiving) return Promise.resolve(true);
    const accepted = this.accepted(name.name());
    return Promise.resolve(accepted === null || accepted.equals(key));
  }

  /** The key this device sees for the contact now: the changed one if any, else the accepted one. */
  getIdentity(name: ProtocolAddress): Promise<PublicKey | null> {
    return Promise.resolve(this.changed(name.name()) ?? this.accepted(name.name()));
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

/**
 * Sender keys (groups): this device's own, one per group distribution, and
 * those other members' devices sent it, by sender address and distribution id.
 */
export class ProfileSenderKeyStore extends SenderKeyStore {
  constructor(private readonly profile: Profile) {
    super();
  }

  private file(sender: ProtocolAddress, distributionId: string): string {
    return `sender-keys/${sender.name()}.${sender.deviceId()}.${distributionId}`;
  }

  saveSenderKey(sender: ProtocolAddress, distributionId: string, record: SenderKeyRecord): Promise<void> {
    this.profile.write(this.file(sender, distributionId), record.serialize());
    return Promise.resolve();
  }

  getSenderKey(sender: ProtocolAddress, distributionId: string): Promise<SenderKeyRecord | null> {
    const data = this.profile.read(this.file(sender, distributionId));
    return Promise.resolve(data ? SenderKeyRecord.deserialize(bytes(data)) : null);
  }
}

/** A device's libsignal stores, all kept in its profile. */
export interface SignalStores {
  readonly sessions: ProfileSessionStore;
  readonly identities: ProfileIdentityStore;
  readonly preKeys: ProfilePreKeyStore;
  readonly signedPreKeys: ProfileSignedPreKeyStore;
  readonly kyberPreKeys: ProfileKyberPreKeyStore;
  readonly senderKeys: ProfileSenderKeyStore;
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
    senderKeys: new ProfileSenderKeyStore(profile),
  };
}
