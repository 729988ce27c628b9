import { deviceListSigningInput } from '@sotto/contracts';
import type { PrivateKey, PublicKey } from '@signalapp/libsignal-client';
import {
  DeviceListContent,
  SignedDeviceList,
  type ListedDevice,
} from '@sotto/contracts/generated/sotto/common/v1/device_list';
import { bytes } from './client/bytes';
import { SottoError } from './errors';

/** A device list as a client works with it: decoded, its version a bigint. */
export interface DeviceList {
  readonly accountId: string;
  readonly version: bigint;
  /** By device id ascending, each once. */
  readonly devices: readonly ListedDevice[];
  readonly signedAtMs: number;
}

/** The devices by id ascending; the same id twice is refused. */
export function sortedDevices(devices: readonly ListedDevice[]): ListedDevice[] {
  const sorted = [...devices].sort((a, b) => a.deviceId - b.deviceId);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]?.deviceId === sorted[i - 1]?.deviceId) {
      throw new SottoError(`device list: device ${sorted[i]?.deviceId} is listed twice`);
    }
  }
  return sorted.map(({ deviceId, registrationId }) => ({ deviceId, registrationId }));
}

/** Signs the list with the account identity key: what only the account's own devices can do. */
export function signDeviceList(list: DeviceList, identityKey: PrivateKey): SignedDeviceList {
  if (list.version < 1n) throw new SottoError('device list: the version starts at 1');
  const content = DeviceListContent.encode({
    accountId: list.accountId,
    version: list.version.toString(),
    devices: sortedDevices(list.devices),
    signedAtMs: String(list.signedAtMs),
  }).finish();
  return { content, signature: identityKey.sign(deviceListSigningInput(content)) };
}

/**
 * The list inside a signed one, once it is shown to be the account's own:
 * signed by `identityKey` (the key this device trusts for the account), of
 * the account `accountId`, its devices by id ascending (each once), and its
 * version no lower than `highestSeen`, the highest this device has seen for
 * the account (a server replaying an older list is refused). Throws a
 * SottoError saying what is wrong.
 */
export function verifyDeviceList(
  signed: SignedDeviceList,
  identityKey: PublicKey,
  expected: { accountId: string; highestSeen?: bigint; name?: string },
): DeviceList {
  const who = expected.name ?? expected.accountId;
  let valid = false;
  try {
    valid = identityKey.verify(deviceListSigningInput(signed.content), bytes(signed.signature));
  } catch {
    valid = false;
  }
  if (!valid) throw new SottoError(`the device list of ${who} is not signed by ${who}'s identity key`);
  let content: DeviceListContent;
  try {
    content = DeviceListContent.decode(signed.content);
  } catch {
    throw new SottoError(`the device list of ${who} cannot be read`);
  }
  if (content.accountId !== expected.accountId) {
    throw new SottoError(`the device list the server gave for ${who} is of another account`);
  }
  const version = BigInt(content.version);
  if (version < 1n) throw new SottoError(`the device list of ${who} has no version`);
  if (expected.highestSeen !== undefined && version < expected.highestSeen) {
    throw new SottoError(
      `the server gave an old device list of ${who} (version ${version}, after version ${expected.highestSeen}): not sending`,
    );
  }
  for (let i = 1; i < content.devices.length; i++) {
    const [before, after] = [content.devices[i - 1], content.devices[i]];
    if (!before || !after || before.deviceId >= after.deviceId) {
      throw new SottoError(`the device list of ${who} does not list its devices by id ascending, each once`);
    }
  }
  return {
    accountId: content.accountId,
    version,
    devices: content.devices.map(({ deviceId, registrationId }) => ({ deviceId, registrationId })),
    signedAtMs: Number(content.signedAtMs),
  };
}

/** The next list: this one with `change` applied, its version one higher. */
export function nextDeviceList(
  list: DeviceList,
  change: { add?: ListedDevice; remove?: number },
  now = Date.now(),
): DeviceList {
  const kept = list.devices.filter(
    (device) => device.deviceId !== change.remove && device.deviceId !== change.add?.deviceId,
  );
  return {
    accountId: list.accountId,
    version: list.version + 1n,
    devices: sortedDevices(change.add ? [...kept, change.add] : kept),
    signedAtMs: now,
  };
}

/** The device ids one list has that the other has not: what an account added and removed between them. */
export function deviceListChanges(
  before: Pick<DeviceList, 'devices'>,
  after: Pick<DeviceList, 'devices'>,
): { added: number[]; removed: number[] } {
  const had = new Set(before.devices.map((device) => device.deviceId));
  const has = new Set(after.devices.map((device) => device.deviceId));
  return {
    added: [...has].filter((id) => !had.has(id)),
    removed: [...had].filter((id) => !has.has(id)),
  };
}

/** A signed list as a profile keeps it: base64 of the SignedDeviceList. */
export function encodeSignedDeviceList(signed: SignedDeviceList): string {
  return Buffer.from(SignedDeviceList.encode(signed).finish()).toString('base64');
}

export function decodeSignedDeviceList(encoded: string): SignedDeviceList {
  try {
    return SignedDeviceList.decode(Buffer.from(encoded, 'base64'));
  } catch {
    throw new SottoError('a kept device list cannot be read');
  }
}
