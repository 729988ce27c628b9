import { status } from '@grpc/grpc-js';
import { PublicKey } from '@signalapp/libsignal-client';
import { deviceListSigningInput } from '@sotto/contracts';
import {
  DeviceListContent,
  type SignedDeviceList,
} from '@sotto/contracts/generated/sotto/common/v1/device_list';
import { grpcError, refuse } from '@sotto/platform/grpc';
import type { AccountId } from '@sotto/platform/ids';
import type { DeviceSummary } from '../accounts/accounts.repository';

/** The largest version PostgreSQL's bigint keeps. */
const MAX_VERSION = 2n ** 63n - 1n;
/** A list names at most this many devices (libsignal's device ids are 1 to 127). */
const MAX_LISTED_DEVICES = 127;

/** What a signed list must say to be stored for a change of the account's devices. */
export interface DeviceListRequirement {
  readonly accountId: AccountId;
  /** The account identity key as stored (a serialized libsignal PublicKey). */
  readonly identityKey: Uint8Array;
  /** The stored list's version; 0 while there is none. */
  readonly storedVersion: bigint;
  /** 'next': exactly one above the stored version (a device added or removed); 'above': any higher. */
  readonly version: 'next' | 'above';
  /** The account's devices as they will be once the change is made, in any order. */
  readonly devices: readonly DeviceSummary[];
}

/** A list that passed every check, ready to store. */
export interface VerifiedDeviceList {
  readonly version: bigint;
  readonly content: Uint8Array;
  readonly signature: Uint8Array;
}

const invalid = (field: string, problem: string): Error =>
  grpcError(status.INVALID_ARGUMENT, `${field}: ${problem}`);

function decodeContent(content: Uint8Array, field: string): DeviceListContent {
  try {
    return DeviceListContent.decode(content);
  } catch {
    throw invalid(`${field}.content`, 'is not a serialized sotto.common.v1.DeviceListContent');
  }
}

function signatureVerifies(identityKey: Uint8Array, content: Uint8Array, signature: Uint8Array): boolean {
  try {
    return PublicKey.deserialize(new Uint8Array(identityKey)).verify(
      deviceListSigningInput(content),
      new Uint8Array(signature),
    );
  } catch {
    return false;
  }
}

/**
 * Checks a signed device list against the change it comes with: well formed,
 * of this account, signed by the account identity key, its version the one
 * the change needs, and naming exactly the devices (with their registration
 * ids) the account will have. INVALID_ARGUMENT for a list that is malformed
 * or not the account's; FAILED_PRECONDITION (device-list-stale) for one that
 * is the account's but not for this state of it. Every message names `field`.
 */
export function verifyDeviceList(
  list: SignedDeviceList | undefined,
  requirement: DeviceListRequirement,
  field = 'device_list',
): VerifiedDeviceList {
  if (!list) throw invalid(field, 'is required');
  if (list.content.length === 0) throw invalid(`${field}.content`, 'is required');
  if (list.signature.length === 0) throw invalid(`${field}.signature`, 'is required');
  const content = decodeContent(list.content, field);
  if (!signatureVerifies(requirement.identityKey, list.content, list.signature)) {
    throw invalid(`${field}.signature`, 'does not verify against the account identity key');
  }
  if (content.accountId !== requirement.accountId) {
    throw invalid(`${field}.content.account_id`, `is not this account (${requirement.accountId})`);
  }
  const version = BigInt(content.version);
  if (version < 1n || version > MAX_VERSION) {
    throw invalid(`${field}.content.version`, `must be between 1 and ${MAX_VERSION}`);
  }
  if (content.devices.length > MAX_LISTED_DEVICES) {
    throw invalid(`${field}.content.devices`, `at most ${MAX_LISTED_DEVICES} devices`);
  }
  content.devices.forEach((device, index) => {
    const previous = content.devices[index - 1];
    if (device.deviceId < 1 || device.deviceId > MAX_LISTED_DEVICES) {
      throw invalid(
        `${field}.content.devices[${index}].device_id`,
        `must be between 1 and ${MAX_LISTED_DEVICES}`,
      );
    }
    if (previous !== undefined && device.deviceId <= previous.deviceId) {
      throw invalid(
        `${field}.content.devices[${index}].device_id`,
        'device ids must be strictly ascending, each listed once',
      );
    }
  });

  const wanted = requirement.version === 'next' ? requirement.storedVersion + 1n : undefined;
  if (wanted !== undefined && version !== wanted) {
    throw refuse(
      'device-list-stale',
      `${field}.content.version: is ${version}; this change needs ${wanted}, one above the stored list's`,
    );
  }
  if (wanted === undefined && version <= requirement.storedVersion) {
    throw refuse(
      'device-list-stale',
      `${field}.content.version: is ${version}; it must be above the stored list's ${requirement.storedVersion}`,
    );
  }
  const expected = [...requirement.devices].sort((a, b) => a.deviceId - b.deviceId);
  const describe = (devices: readonly { deviceId: number; registrationId: number }[]): string =>
    devices.map((device) => `${device.deviceId} (registration id ${device.registrationId})`).join(', ') ||
    'none';
  const matches =
    expected.length === content.devices.length &&
    expected.every(
      (device, index) =>
        content.devices[index]?.deviceId === device.deviceId &&
        content.devices[index]?.registrationId === device.registrationId,
    );
  if (!matches) {
    throw refuse(
      'device-list-stale',
      `${field}.content.devices: lists ${describe(content.devices)}; the account's devices will be ${describe(expected)}`,
    );
  }
  return { version, content: list.content, signature: list.signature };
}
