import {
  KyberPreKeyRecord,
  KyberPreKeyStore,
  PreKeyRecord,
  PreKeyStore,
  ProtocolAddress,
  SignedPreKeyRecord,
  SignedPreKeyStore,
  processPreKeyBundle,
} from '@signalapp/libsignal-client';
import { preKeyBundle, type GeneratedDeviceKeys } from '@sotto/client-sdk';
import type { PreKeyBundle as BundleMessage } from '@sotto/contracts/generated/sotto/common/v1/keys';
import { MemoryIdentityStore, MemorySenderKeyStore, MemorySessionStore } from '@sotto/testing';

/*
 * A device's libsignal state in memory, from the keys it registered with: enough for a test to
 * encrypt to another device from its bundle and to decrypt what was sent to it, as a real client
 * does, without a profile on disk.
 */

const bytes = (data: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(data);

class MemoryPreKeys extends PreKeyStore {
  private readonly records = new Map<number, PreKeyRecord>();

  constructor(keys: GeneratedDeviceKeys) {
    super();
    for (const key of keys.oneTimeEc) {
      this.records.set(key.keyId, PreKeyRecord.new(key.keyId, key.privateKey.getPublicKey(), key.privateKey));
    }
  }

  savePreKey(id: number, record: PreKeyRecord): Promise<void> {
    this.records.set(id, record);
    return Promise.resolve();
  }

  getPreKey(id: number): Promise<PreKeyRecord> {
    const record = this.records.get(id);
    return record ? Promise.resolve(record) : Promise.reject(new Error(`no one-time prekey ${id}`));
  }

  removePreKey(id: number): Promise<void> {
    this.records.delete(id);
    return Promise.resolve();
  }
}

class MemorySignedPreKeys extends SignedPreKeyStore {
  private readonly record: SignedPreKeyRecord;

  constructor(private readonly keys: GeneratedDeviceKeys) {
    super();
    const { keyId, privateKey, signature } = keys.signedPreKey;
    this.record = SignedPreKeyRecord.new(
      keyId,
      Date.now(),
      privateKey.getPublicKey(),
      privateKey,
      bytes(signature),
    );
  }

  saveSignedPreKey(): Promise<void> {
    return Promise.resolve();
  }

  getSignedPreKey(id: number): Promise<SignedPreKeyRecord> {
    return id === this.keys.signedPreKey.keyId
      ? Promise.resolve(this.record)
      : Promise.reject(new Error(`no signed prekey ${id}`));
  }
}

class MemoryKyberPreKeys extends KyberPreKeyStore {
  private readonly records = new Map<number, KyberPreKeyRecord>();

  constructor(keys: GeneratedDeviceKeys) {
    super();
    for (const key of [keys.kyberLastResort, ...keys.oneTimeKyber]) {
      this.records.set(
        key.keyId,
        KyberPreKeyRecord.new(key.keyId, Date.now(), key.keyPair, bytes(key.signature)),
      );
    }
  }

  saveKyberPreKey(id: number, record: KyberPreKeyRecord): Promise<void> {
    this.records.set(id, record);
    return Promise.resolve();
  }

  getKyberPreKey(id: number): Promise<KyberPreKeyRecord> {
    const record = this.records.get(id);
    return record ? Promise.resolve(record) : Promise.reject(new Error(`no Kyber prekey ${id}`));
  }

  markKyberPreKeyUsed(): Promise<void> {
    return Promise.resolve();
  }
}

/** One device's stores, from the keys it registered. */
export class SignalParty {
  readonly sessions = new MemorySessionStore();
  readonly identities: MemoryIdentityStore;
  readonly preKeys: MemoryPreKeys;
  readonly signedPreKeys: MemorySignedPreKeys;
  readonly kyberPreKeys: MemoryKyberPreKeys;
  readonly senderKeys = new MemorySenderKeyStore();

  readonly address: ProtocolAddress;

  constructor(
    readonly keys: GeneratedDeviceKeys,
    readonly accountId: string,
    readonly deviceId = 1,
  ) {
    this.address = ProtocolAddress.new(accountId, deviceId);
    this.identities = new MemoryIdentityStore(keys.identity.privateKey, keys.registrationId);
    this.preKeys = new MemoryPreKeys(keys);
    this.signedPreKeys = new MemorySignedPreKeys(keys);
    this.kyberPreKeys = new MemoryKyberPreKeys(keys);
  }

  /**
   * Starts a session with the device of `accountId` that `bundle` (as the
   * gateway answered it) describes; under another device id, for a test
   * that plays a sender with a wrong idea of the devices.
   */
  async startSession(
    accountId: string,
    bundle: BundleMessage,
    deviceId = bundle.deviceId,
  ): Promise<ProtocolAddress> {
    const address = ProtocolAddress.new(accountId, deviceId);
    await processPreKeyBundle(preKeyBundle(bundle), address, this.address, this.sessions, this.identities);
    return address;
  }
}
