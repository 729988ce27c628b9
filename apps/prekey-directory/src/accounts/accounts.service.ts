import { Injectable } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import { grpcError } from '@sotto/platform/grpc';
import type { AccountId, DeviceId } from '@sotto/platform/ids';
import { checkRegistrationId, parseIdentityKey, validateKeys } from '../prekeys/key-validation';
import {
  AccountsRepository,
  PRIMARY_DEVICE_ID,
  UsernameTakenError,
  type DeviceSummary,
  type UnidentifiedAccess,
  type NewDevice,
} from './accounts.repository';
import type {
  RecoverAccountRequest,
  RegisterRequest,
} from '@sotto/contracts/generated/sotto/directory/v1/directory';
import { DeviceListChanges, UnidentifiedAccessChanges } from './account-changes';
import { hashDeviceSecret, isDeviceSecret, newDeviceSecret, verifyDeviceSecret } from './credentials';
import { canonicalUsername } from './username';

/** What registering (or recovering onto) a new device says about it. */
export type RegistrationInput = Pick<RegisterRequest, 'username' | 'identityKey' | 'device'>;

/** Unidentified-access keys are derived from the profile key on the client: 16 bytes. */
export const UNIDENTIFIED_ACCESS_KEY_BYTES = 16;

/** Recovery credentials are derived from the recovery key on the client: 32 bytes. */
const RECOVERY_CREDENTIAL_BYTES = 32;

function encodeRecoveryCredential(credential: Uint8Array, field = 'recovery_credential'): string {
  if (credential.length !== RECOVERY_CREDENTIAL_BYTES) {
    throw grpcError(status.INVALID_ARGUMENT, `${field}: must be ${RECOVERY_CREDENTIAL_BYTES} bytes`);
  }
  return Buffer.from(credential).toString('base64url');
}

/**
 * Checks a new device's keys (every signature against the identity key) and
 * makes its secret. Throws INVALID_ARGUMENT naming the first bad field.
 */
export function newDevice(input: Pick<RegistrationInput, 'identityKey' | 'device'>): {
  device: NewDevice;
  deviceSecret: string;
} {
  const identity = parseIdentityKey(input.identityKey);
  const device = input.device;
  if (!device) throw grpcError(status.INVALID_ARGUMENT, 'device: is required');
  checkRegistrationId(device.registrationId, 'device.registration_id');
  if (!device.signedPreKey) throw grpcError(status.INVALID_ARGUMENT, 'device.signed_pre_key: is required');
  if (!device.kyberLastResortPreKey) {
    throw grpcError(status.INVALID_ARGUMENT, 'device.kyber_last_resort_pre_key: is required');
  }
  const keys = validateKeys(
    identity,
    {
      signedPreKey: device.signedPreKey,
      kyberLastResort: device.kyberLastResortPreKey,
      oneTimeEc: device.oneTimePreKeys,
      oneTimeKyber: device.oneTimeKyberPreKeys,
    },
    {
      prefix: 'device',
      signedPreKey: 'signed_pre_key',
      kyberLastResort: 'kyber_last_resort_pre_key',
      oneTimeEc: 'one_time_pre_keys',
      oneTimeKyber: 'one_time_kyber_pre_keys',
    },
  );
  const deviceSecret = newDeviceSecret();
  return {
    deviceSecret,
    device: {
      registrationId: device.registrationId,
      credential: hashDeviceSecret(deviceSecret),
      signedPreKey: device.signedPreKey,
      kyberLastResort: device.kyberLastResortPreKey,
      keys,
    },
  };
}

@Injectable()
export class AccountsService {
  constructor(
    private readonly accounts: AccountsRepository,
    private readonly deviceLists: DeviceListChanges,
    private readonly accessChanges: UnidentifiedAccessChanges,
  ) {}

  /**
   * Creates an account and its primary device. Every key is checked and every
   * signature verified before anything is written; one bad key refuses the
   * whole request and stores nothing.
   */
  async register(
    input: RegistrationInput,
  ): Promise<{ accountId: AccountId; deviceId: DeviceId; deviceSecret: string }> {
    const username = canonicalUsername(input.username);
    const { device, deviceSecret } = newDevice(input);
    try {
      const accountId = await this.accounts.create({ username, identityKey: input.identityKey, ...device });
      await this.deviceLists.changed(accountId);
      return { accountId, deviceId: PRIMARY_DEVICE_ID, deviceSecret };
    } catch (error) {
      if (error instanceof UsernameTakenError) {
        throw grpcError(status.ALREADY_EXISTS, `username: ${username} is taken`);
      }
      throw error;
    }
  }

  /**
   * Sets the credential that lets a new device take the account over. The
   * first one needs only the caller's device credential (checked by the
   * gateway); once one is set, replacing it needs the current one, so a
   * stolen device secret alone cannot plant an attacker's credential and
   * then recover the account away from its owner. Presenting the current
   * credential again (every backup under the same recovery key does) is allowed.
   */
  async setRecoveryCredential(
    accountId: AccountId,
    credential: Uint8Array,
    current: Uint8Array,
  ): Promise<void> {
    const stored = hashDeviceSecret(encodeRecoveryCredential(credential));
    const presented =
      current.length === 0 ? undefined : encodeRecoveryCredential(current, 'current_recovery_credential');
    const outcome = await this.accounts.replaceRecoveryCredential(
      accountId,
      (existing) =>
        existing === undefined || (presented !== undefined && verifyDeviceSecret(presented, existing)),
      stored,
    );
    if (outcome === 'no-account') throw grpcError(status.NOT_FOUND, 'account_id: no such account');
    if (outcome === 'refused') {
      throw grpcError(
        status.PERMISSION_DENIED,
        presented === undefined
          ? 'current_recovery_credential: the account has a recovery credential; replacing it needs the current one'
          : 'current_recovery_credential: does not match the recovery credential set now',
      );
    }
  }

  /**
   * Gives a device a new secret, made by the client (so that a lost answer
   * does not lose it: the client kept it before asking), if it presents its
   * current one. The directory keeps only a salted hash, as at registration.
   */
  async rotateSecret(accountId: AccountId, deviceId: DeviceId, current: string, next: string): Promise<void> {
    if (!isDeviceSecret(next)) {
      throw grpcError(
        status.INVALID_ARGUMENT,
        'new_device_secret: must be 32 random bytes in unpadded base64url (43 characters)',
      );
    }
    if (next === current) {
      throw grpcError(status.INVALID_ARGUMENT, 'new_device_secret: must differ from the current secret');
    }
    const rotated = await this.accounts.rotateSecret(
      accountId,
      deviceId,
      (stored) => verifyDeviceSecret(current, stored),
      hashDeviceSecret(next),
    );
    if (!rotated) {
      throw grpcError(status.UNAUTHENTICATED, 'current_device_secret: unknown device or wrong secret');
    }
  }

  /**
   * A new device proves with the recovery credential that the account is its
   * user's, and becomes its only device: every other device is signed out.
   * A wrong username, an account without a credential and a wrong credential
   * get the same answer, so the call tells a stranger nothing.
   */
  async recover(input: RecoverAccountRequest): Promise<{
    accountId: AccountId;
    deviceId: DeviceId;
    deviceSecret: string;
    signedOutDeviceIds: DeviceId[];
  }> {
    const username = canonicalUsername(input.username);
    const presented = encodeRecoveryCredential(input.recoveryCredential, 'recovery_credential');
    const { device, deviceSecret } = newDevice(input);
    const recovered = await this.accounts.recover(
      username,
      (stored) => verifyDeviceSecret(presented, stored),
      input.identityKey,
      device,
    );
    if (!recovered) {
      throw grpcError(status.PERMISSION_DENIED, 'recovery_credential: wrong username or recovery credential');
    }
    await this.deviceLists.changed(recovered.accountId);
    return { ...recovered, deviceSecret };
  }

  async authenticate(accountId: AccountId, deviceId: DeviceId, secret: string): Promise<boolean> {
    return verifyDeviceSecret(secret, await this.accounts.credential(accountId, deviceId));
  }

  async lookup(username: string): Promise<{ accountId: AccountId; username: string }> {
    const account = await this.accounts.findByUsername(canonicalUsername(username));
    if (!account)
      throw grpcError(status.NOT_FOUND, `username: no account is called ${username.toLowerCase()}`);
    return { accountId: account.id, username: account.username };
  }

  async devices(accountId: AccountId): Promise<DeviceSummary[]> {
    const devices = await this.accounts.devices(accountId);
    if (devices.length === 0) throw grpcError(status.NOT_FOUND, 'account_id: no such account');
    return devices;
  }

  /**
   * The devices of each account, in the order asked, for the relay's
   * device-list cache: an account that does not exist comes back not found
   * rather than failing the others.
   */
  async devicesOfAccounts(
    accountIds: readonly AccountId[],
  ): Promise<{ accountId: AccountId; found: boolean; devices: DeviceSummary[] }[]> {
    const devices = await this.accounts.devicesOfAccounts(accountIds);
    return accountIds.map((accountId) => {
      const of = devices.get(accountId);
      return { accountId, found: of !== undefined, devices: of ?? [] };
    });
  }

  /** The reverse of lookup: the username an account holds now. */
  async lookupAccount(accountId: AccountId): Promise<{ accountId: AccountId; username: string }> {
    const username = await this.accounts.usernameOf(accountId);
    if (username === undefined) throw grpcError(status.NOT_FOUND, 'account_id: no such account');
    return { accountId, username };
  }

  /** The account's identity public key, for the sender certificates the gateway issues. */
  async identityKey(accountId: AccountId): Promise<Uint8Array> {
    const identityKey = await this.accounts.identityKey(accountId);
    if (identityKey === undefined) throw grpcError(status.NOT_FOUND, 'account_id: no such account');
    return identityKey;
  }

  /**
   * Stores the key as given (the server cannot check how it was derived);
   * an empty key clears it. Gateways are told once it is stored. Nothing else
   * changes what unidentifiedAccess answers for an existing account: recovery
   * leaves the access as it was (a client without the old profile key sets a
   * new key here), and accounts are never deleted.
   */
  async setUnidentifiedAccess(accountId: AccountId, key: Uint8Array, unrestricted: boolean): Promise<void> {
    if (key.length !== 0 && key.length !== UNIDENTIFIED_ACCESS_KEY_BYTES) {
      throw grpcError(
        status.INVALID_ARGUMENT,
        `unidentified_access_key: must be ${UNIDENTIFIED_ACCESS_KEY_BYTES} bytes, or empty to clear it`,
      );
    }
    const set = await this.accounts.setUnidentifiedAccess(accountId, {
      key: key.length === 0 ? undefined : key,
      unrestricted,
    });
    if (!set) throw grpcError(status.NOT_FOUND, 'account_id: no such account');
    await this.accessChanges.changed(accountId);
  }

  async unidentifiedAccess(accountId: AccountId): Promise<UnidentifiedAccess> {
    const access = await this.accounts.unidentifiedAccess(accountId);
    if (access === undefined) throw grpcError(status.NOT_FOUND, 'account_id: no such account');
    return access;
  }

  /** The access of each account, in their order; undefined for an account that does not exist. */
  async unidentifiedAccessOfAccounts(
    accountIds: readonly AccountId[],
  ): Promise<(UnidentifiedAccess | undefined)[]> {
    const access = await this.accounts.unidentifiedAccessOfAccounts(accountIds);
    return accountIds.map((accountId) => access.get(accountId));
  }
}
