import { randomInt } from 'node:crypto';
import { IdentityKeyPair, KEMKeyPair, PrivateKey } from '@signalapp/libsignal-client';
import type { DeviceKeys } from '@sotto/contracts/generated/sotto/common/v1/keys';

/**
 * The last-resort Kyber key shares libsignal's Kyber store with the one-time
 * keys, which are numbered from 1; it gets an id they never reach.
 */
export const LAST_RESORT_KYBER_ID = 0xffffff;

export interface SignedEcKey {
  readonly keyId: number;
  readonly privateKey: PrivateKey;
  readonly signature: Uint8Array;
}

export interface SignedKyberKey {
  readonly keyId: number;
  readonly keyPair: KEMKeyPair;
  readonly signature: Uint8Array;
}

export interface OneTimeEcKey {
  readonly keyId: number;
  readonly privateKey: PrivateKey;
}

/** Everything a new device generates; the private halves never leave it. */
export interface GeneratedDeviceKeys {
  readonly identity: IdentityKeyPair;
  readonly registrationId: number;
  readonly signedPreKey: SignedEcKey;
  readonly kyberLastResort: SignedKyberKey;
  readonly oneTimeEc: readonly OneTimeEcKey[];
  readonly oneTimeKyber: readonly SignedKyberKey[];
}

export function generateSignedEcKey(identity: IdentityKeyPair, keyId: number): SignedEcKey {
  const privateKey = PrivateKey.generate();
  return { keyId, privateKey, signature: identity.privateKey.sign(privateKey.getPublicKey().serialize()) };
}

export function generateSignedKyberKey(identity: IdentityKeyPair, keyId: number): SignedKyberKey {
  const keyPair = KEMKeyPair.generate();
  return { keyId, keyPair, signature: identity.privateKey.sign(keyPair.getPublicKey().serialize()) };
}

export function generateOneTimeKeys(
  identity: IdentityKeyPair,
  firstKeyId: number,
  count: number,
): { oneTimeEc: OneTimeEcKey[]; oneTimeKyber: SignedKyberKey[] } {
  const ids = Array.from({ length: count }, (_, index) => firstKeyId + index);
  return {
    oneTimeEc: ids.map((keyId) => ({ keyId, privateKey: PrivateKey.generate() })),
    oneTimeKyber: ids.map((keyId) => generateSignedKyberKey(identity, keyId)),
  };
}

/** A new device's keys with libsignal: identity, registration id, signed and one-time prekeys. */
export function generateDeviceKeys(
  oneTimeKeys = 100,
  identity = IdentityKeyPair.generate(),
): GeneratedDeviceKeys {
  return {
    identity,
    registrationId: randomInt(1, 0x3fff + 1),
    signedPreKey: generateSignedEcKey(identity, 1),
    kyberLastResort: generateSignedKyberKey(identity, LAST_RESORT_KYBER_ID),
    ...generateOneTimeKeys(identity, 1, oneTimeKeys),
  };
}

/** The public halves, as the gateway's Register and the directory take them. */
export function publicDeviceKeys(keys: GeneratedDeviceKeys): DeviceKeys {
  return {
    registrationId: keys.registrationId,
    signedPreKey: {
      keyId: keys.signedPreKey.keyId,
      publicKey: Buffer.from(keys.signedPreKey.privateKey.getPublicKey().serialize()),
      signature: Buffer.from(keys.signedPreKey.signature),
    },
    kyberLastResortPreKey: {
      keyId: keys.kyberLastResort.keyId,
      publicKey: Buffer.from(keys.kyberLastResort.keyPair.getPublicKey().serialize()),
      signature: Buffer.from(keys.kyberLastResort.signature),
    },
    ...publicOneTimeKeys(keys),
  };
}

/** The public halves of one-time keys, as Register and UploadPreKeys take them. */
export function publicOneTimeKeys(
  keys: Pick<GeneratedDeviceKeys, 'oneTimeEc' | 'oneTimeKyber'>,
): Pick<DeviceKeys, 'oneTimePreKeys' | 'oneTimeKyberPreKeys'> {
  return {
    oneTimePreKeys: keys.oneTimeEc.map((key) => ({
      keyId: key.keyId,
      publicKey: Buffer.from(key.privateKey.getPublicKey().serialize()),
    })),
    oneTimeKyberPreKeys: keys.oneTimeKyber.map((key) => ({
      keyId: key.keyId,
      publicKey: Buffer.from(key.keyPair.getPublicKey().serialize()),
      signature: Buffer.from(key.signature),
    })),
  };
}
