import { createHash, randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import type { SignedDeviceList } from '@sotto/contracts/generated/sotto/common/v1/device_list';
import type { DeviceKeys } from '@sotto/contracts/generated/sotto/common/v1/keys';
import { grpcError, refuse } from '@sotto/platform/grpc';
import type { AccountId, DeviceId } from '@sotto/platform/ids';
import { newDevice } from '../accounts/accounts.service';
import { DeviceListChanges } from '../accounts/account-changes';
import { verifyDeviceList } from './device-list-check';
import {
  DeviceChangeRefused,
  DevicesRepository,
  type DeviceDetails,
  type LinkState,
  type StoredDeviceList,
} from './devices.repository';

export const DEVICE_LIMITS = Symbol('DEVICE_LIMITS');
export interface DeviceLimits {
  /** MAX_DEVICES_PER_ACCOUNT. */
  readonly maxDevices: number;
  /** LINK_TOKEN_TTL_SECONDS. */
  readonly linkTokenTtlSeconds: number;
}

export const LINK_TOKEN_BYTES = 32;
/** What an approving device may send the new one: account keys, contacts, some recent history. */
export const MAX_PROVISIONING_BYTES = 1024 * 1024;
/** Device names: at most this many characters, none of them control characters. */
export const MAX_DEVICE_NAME_CHARACTERS = 64;

const UNKNOWN_TOKEN = 'token: unknown, expired or already used';

function tokenHash(token: Uint8Array): Buffer {
  if (token.length !== LINK_TOKEN_BYTES) {
    throw grpcError(status.INVALID_ARGUMENT, `token: must be ${LINK_TOKEN_BYTES} bytes`);
  }
  return createHash('sha256').update(token).digest();
}

export function checkDeviceName(name: string, field = 'name'): string {
  if (Array.from(name).length > MAX_DEVICE_NAME_CHARACTERS) {
    throw grpcError(status.INVALID_ARGUMENT, `${field}: at most ${MAX_DEVICE_NAME_CHARACTERS} characters`);
  }
  // Control characters (C0, DEL, C1) and the line and paragraph separators could forge lines of a listing.
  if (/[\p{Cc}\u2028\u2029]/u.test(name)) {
    throw grpcError(status.INVALID_ARGUMENT, `${field}: must not contain control characters`);
  }
  return name;
}

/**
 * Linked devices and signed device lists. The server can't make a list (it
 * hasn't the account identity key), but it checks every list it stores
 * against the change it comes with, and changes an account's devices only
 * together with a list that says so.
 */
@Injectable()
export class DevicesService {
  constructor(
    private readonly devices: DevicesRepository,
    private readonly deviceLists: DeviceListChanges,
    @Inject(DEVICE_LIMITS) private readonly limits: DeviceLimits,
  ) {}

  async createLink(): Promise<{ token: Uint8Array; expiresAt: Date }> {
    const token = randomBytes(LINK_TOKEN_BYTES);
    const expiresAt = await this.devices.createLink(tokenHash(token), this.limits.linkTokenTtlSeconds);
    return { token, expiresAt };
  }

  async link(token: Uint8Array): Promise<LinkState> {
    const state = await this.devices.link(tokenHash(token));
    if (!state) throw grpcError(status.NOT_FOUND, UNKNOWN_TOKEN);
    return state;
  }

  async approveLink(accountId: AccountId, token: Uint8Array, provisioning: Uint8Array): Promise<DeviceId> {
    const hash = tokenHash(token);
    if (provisioning.length === 0) throw grpcError(status.INVALID_ARGUMENT, 'provisioning: is required');
    if (provisioning.length > MAX_PROVISIONING_BYTES) {
      throw refuse('too-large', `provisioning: at most ${MAX_PROVISIONING_BYTES} bytes`);
    }
    try {
      return await this.devices.approveLink(hash, accountId, provisioning, this.limits.maxDevices);
    } catch (error) {
      throw this.refusal(error);
    }
  }

  async completeLink(request: {
    token: Uint8Array;
    device: DeviceKeys | undefined;
    deviceList: SignedDeviceList | undefined;
    name: string;
  }): Promise<{ accountId: AccountId; deviceId: DeviceId; deviceSecret: string }> {
    const hash = tokenHash(request.token);
    const name = checkDeviceName(request.name);
    if (!request.device) throw grpcError(status.INVALID_ARGUMENT, 'device: is required');
    if (!request.deviceList) throw grpcError(status.INVALID_ARGUMENT, 'device_list: is required');
    const keys = request.device;
    let deviceSecret = '';
    let completed: { accountId: AccountId; deviceId: DeviceId };
    try {
      completed = await this.devices.completeLink(hash, this.limits.maxDevices, (account, deviceId) => {
        // The new device's keys are signed by the account identity key it received from the approving device.
        const made = newDevice({ identityKey: account.identityKey, device: keys });
        deviceSecret = made.deviceSecret;
        const list = verifyDeviceList(request.deviceList, {
          accountId: account.accountId,
          identityKey: account.identityKey,
          storedVersion: account.storedVersion,
          version: 'next',
          devices: [...account.devices, { deviceId, registrationId: keys.registrationId }],
        });
        return { device: made.device, name, list };
      });
    } catch (error) {
      throw this.refusal(error);
    }
    await this.deviceLists.changed(completed.accountId);
    return { ...completed, deviceSecret };
  }

  async removeDevice(
    accountId: AccountId,
    deviceId: DeviceId,
    deviceList: SignedDeviceList | undefined,
  ): Promise<void> {
    try {
      await this.devices.removeDevice(accountId, deviceId, (account, remaining) =>
        verifyDeviceList(deviceList, {
          accountId,
          identityKey: account.identityKey,
          storedVersion: account.storedVersion,
          version: 'next',
          devices: remaining,
        }),
      );
    } catch (error) {
      throw this.refusal(error, deviceId);
    }
    await this.deviceLists.changed(accountId);
  }

  async setDeviceList(accountId: AccountId, deviceList: SignedDeviceList | undefined): Promise<void> {
    const set = await this.devices.setDeviceList(accountId, (account) =>
      verifyDeviceList(deviceList, {
        accountId,
        identityKey: account.identityKey,
        storedVersion: account.storedVersion,
        version: 'above',
        devices: account.devices,
      }),
    );
    if (!set) throw grpcError(status.NOT_FOUND, 'account_id: no such account');
    // The devices did not change, but relays that cache lists drop theirs all the same.
    await this.deviceLists.changed(accountId);
  }

  async deviceList(accountId: AccountId): Promise<StoredDeviceList> {
    const list = await this.devices.deviceList(accountId);
    if (!list) throw grpcError(status.NOT_FOUND, 'account_id: the account has published no device list');
    return list;
  }

  details(accountId: AccountId): Promise<DeviceDetails[]> {
    return this.devices.details(accountId);
  }

  recordLastSeen(accountId: AccountId, deviceId: DeviceId): Promise<void> {
    return this.devices.recordLastSeen(accountId, deviceId);
  }

  private refusal(error: unknown, deviceId?: DeviceId): unknown {
    if (!(error instanceof DeviceChangeRefused)) return error;
    switch (error.reason) {
      case 'no-token':
        return grpcError(status.NOT_FOUND, UNKNOWN_TOKEN);
      case 'not-approved':
        return grpcError(status.FAILED_PRECONDITION, 'token: not approved yet; WaitForLink until it is');
      case 'full':
        return refuse(
          'device-limit',
          `the account already has ${this.limits.maxDevices} devices, the most it may have; remove one first`,
        );
      case 'no-device':
        return grpcError(status.NOT_FOUND, `device_id: the account has no device ${deviceId ?? ''}`.trim());
      case 'last-device':
        return grpcError(
          status.FAILED_PRECONDITION,
          "device_id: is the account's only device; an account keeps at least one",
        );
    }
  }
}
