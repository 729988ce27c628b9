import {
  IdentityKeyPair,
  KyberPreKeyRecord,
  PreKeyRecord,
  SignedPreKeyRecord,
} from '@signalapp/libsignal-client';
import {
  LAST_RESORT_KYBER_ID,
  generateOneTimeKeys,
  publicOneTimeKeys,
  type GeneratedDeviceKeys,
} from '../keys';
import { Profile, type AccountFile } from '../profile';
import { bytes } from './bytes';
import type { GatewayConnection } from './connection';

/** One-time prekeys of each kind made at registration, and in each refill. */
export const REFILL = 100;
const SIGNED_PRE_KEY_ID = 1;

export function identityKeyPair(account: Pick<AccountFile, 'identityKeyPair'>): IdentityKeyPair {
  return IdentityKeyPair.deserialize(bytes(Buffer.from(account.identityKeyPair, 'base64')));
}

function saveOneTimeKeys(
  profile: Profile,
  keys: Pick<GeneratedDeviceKeys, 'oneTimeEc' | 'oneTimeKyber'>,
): void {
  const now = Date.now();
  for (const key of keys.oneTimeEc) {
    profile.write(
      `prekeys/${key.keyId}`,
      PreKeyRecord.new(key.keyId, key.privateKey.getPublicKey(), key.privateKey).serialize(),
    );
  }
  for (const key of keys.oneTimeKyber) {
    profile.write(
      `kyber-prekeys/${key.keyId}`,
      KyberPreKeyRecord.new(key.keyId, now, key.keyPair, bytes(key.signature)).serialize(),
    );
  }
}

/**
 * Writes a newly registered (or recovered) device into its profile: its
 * signed prekeys, one-time prekeys and, last, account.json, which makes the
 * profile a registered device. `writeAccount` false leaves account.json to
 * the caller.
 */
export function saveNewDevice(
  profile: Profile,
  generated: GeneratedDeviceKeys,
  registered: { username: string; accountId: string; deviceId: number; deviceSecret: string },
  writeAccount = true,
): AccountFile {
  Profile.create(profile.dir);
  const now = Date.now();
  const { signedPreKey, kyberLastResort, identity } = generated;
  profile.write(
    `signed-prekeys/${SIGNED_PRE_KEY_ID}`,
    SignedPreKeyRecord.new(
      signedPreKey.keyId,
      now,
      signedPreKey.privateKey.getPublicKey(),
      signedPreKey.privateKey,
      bytes(signedPreKey.signature),
    ).serialize(),
  );
  profile.write(
    `kyber-prekeys/${LAST_RESORT_KYBER_ID}`,
    KyberPreKeyRecord.new(
      kyberLastResort.keyId,
      now,
      kyberLastResort.keyPair,
      bytes(kyberLastResort.signature),
    ).serialize(),
  );
  saveOneTimeKeys(profile, generated);
  const account: AccountFile = {
    username: registered.username,
    accountId: registered.accountId,
    deviceId: registered.deviceId,
    deviceSecret: registered.deviceSecret,
    registrationId: generated.registrationId,
    identityKeyPair: Buffer.from(identity.serialize()).toString('base64'),
    nextPreKeyId: REFILL + 1,
  };
  if (writeAccount) profile.writeJson('account.json', account);
  return account;
}

/** Uploads a new batch of one-time keys, keeping the private halves in the profile. */
export async function refillPreKeys(profile: Profile, connection: GatewayConnection): Promise<void> {
  const account = profile.account();
  const fresh = generateOneTimeKeys(identityKeyPair(account), account.nextPreKeyId, REFILL);
  saveOneTimeKeys(profile, fresh);
  await connection.call(connection.keys.uploadPreKeys.bind(connection.keys), publicOneTimeKeys(fresh));
  profile.writeJson('account.json', { ...account, nextPreKeyId: account.nextPreKeyId + REFILL });
}
