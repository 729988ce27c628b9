import {
  AccountServiceClient,
  VaultServiceClient,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { deriveAccountRecoveryCredential, parseRecoveryKey, type RecoveryKey } from '../backup';
import { explain, SottoError } from '../errors';
import { gatewayCredentials } from '../gateway-trust';
import { unary } from '../grpc';
import { generateDeviceKeys, publicDeviceKeys } from '../keys';
import { Profile, type AccountFile } from '../profile';
import { parseServerAddress } from '../server';
import { recoverWithPassword } from '../vault-client';
import { keepRecoveryKey } from './backups';
import { REFILL, saveNewDevice } from './prekeys';

/** A device just made: its profile, its checked server address and its account. */
export interface NewDevice {
  readonly profile: Profile;
  readonly server: string;
  readonly account: AccountFile;
}

/** The profile a new device is made in; it must not hold an account yet. */
function newProfile(profileDir: string): Profile {
  const profile = new Profile(profileDir);
  if (profile.exists) {
    throw new SottoError(`${profileDir} already holds the account ${profile.account().username}`);
  }
  return profile;
}

/** Creates keys in a new profile and registers them; nothing is written unless the server accepts. */
export async function registerDevice(options: {
  profileDir: string;
  server: string;
  username: string;
  /** The CA to verify the gateway with (see gatewayCredentials). */
  ca?: string;
}): Promise<NewDevice> {
  const profile = newProfile(options.profileDir);
  const server = parseServerAddress(options.server);
  const generated = generateDeviceKeys(REFILL);
  const accounts = new AccountServiceClient(server, gatewayCredentials(server, { ca: options.ca }));
  let registered;
  try {
    registered = await unary(accounts.register.bind(accounts), {
      username: options.username,
      identityKey: Buffer.from(generated.identity.publicKey.serialize()),
      device: publicDeviceKeys(generated),
    });
  } catch (error) {
    throw explain(error, server);
  } finally {
    accounts.close();
  }

  const account = saveNewDevice(profile, generated, {
    username: options.username.toLowerCase(),
    ...registered,
  });
  return { profile, server, account };
}

/**
 * Takes an account over with its recovery key (as typed, or from the vault
 * with the password); the old devices are signed out. The new device's keys
 * and the recovery key are saved at once, but account.json is left to the
 * caller: the profile becomes a registered device once its backup is in.
 */
export async function recoverDevice(options: {
  profileDir: string;
  server: string;
  username: string;
  recoveryKey?: string;
  password?: string;
  ca?: string;
}): Promise<NewDevice & { readonly recoveryKey: RecoveryKey }> {
  const profile = newProfile(options.profileDir);
  const server = parseServerAddress(options.server);
  const username = options.username.toLowerCase();
  const tls = gatewayCredentials(server, { ca: options.ca });
  const accounts = new AccountServiceClient(server, tls);
  const vault = new VaultServiceClient(server, tls);
  let recoveryKey: RecoveryKey;
  let recovered;
  const generated = generateDeviceKeys(REFILL);
  try {
    if (options.recoveryKey !== undefined) recoveryKey = parseRecoveryKey(options.recoveryKey);
    else if (options.password !== undefined)
      recoveryKey = await recoverWithPassword({ client: vault, username, password: options.password });
    else throw new SottoError('a recovery key or a password is needed');
    recovered = await unary(accounts.recoverAccount.bind(accounts), {
      username,
      recoveryCredential: Buffer.from(deriveAccountRecoveryCredential(recoveryKey)),
      identityKey: Buffer.from(generated.identity.publicKey.serialize()),
      device: publicDeviceKeys(generated),
    });
  } catch (error) {
    throw explain(error, server);
  } finally {
    accounts.close();
    vault.close();
  }

  // The account is this device's now: its keys are saved before anything else can fail.
  const account = saveNewDevice(profile, generated, { username, ...recovered }, false);
  keepRecoveryKey(profile, recoveryKey);
  return { profile, server, account, recoveryKey };
}
