import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { PrivateKey } from '@signalapp/libsignal-client';
import type { RpcException } from '@nestjs/microservices';
import { deviceListSigningInput } from '@sotto/contracts';
import {
  DeviceListContent,
  type ListedDevice,
  type SignedDeviceList,
} from '@sotto/contracts/generated/sotto/common/v1/device_list';
import type { AccountId, DeviceId } from '@sotto/platform/ids';
import { verifyDeviceList, type DeviceListRequirement } from './device-list-check';

const identity = PrivateKey.generate();
const accountId = randomUUID() as AccountId;
const devices = [
  { deviceId: 1 as DeviceId, registrationId: 11 },
  { deviceId: 4 as DeviceId, registrationId: 44 },
];
const requirement: DeviceListRequirement = {
  accountId,
  identityKey: identity.getPublicKey().serialize(),
  storedVersion: 7n,
  version: 'next',
  devices: [...devices].reverse(),
};

function sign(
  listed: readonly ListedDevice[] = devices,
  {
    version = '8',
    account = accountId,
    key = identity,
  }: { version?: string; account?: string; key?: PrivateKey } = {},
): SignedDeviceList {
  const content = DeviceListContent.encode({
    accountId: account,
    version,
    devices: [...listed],
    signedAtMs: '1',
  }).finish();
  return { content, signature: key.sign(deviceListSigningInput(content)) };
}

/** The status and message a check refuses with. */
function refusal(check: () => unknown): { code: status; message: string } {
  try {
    check();
  } catch (error) {
    const { code, message } = (error as RpcException).getError() as { code: status; message: string };
    return { code, message };
  }
  throw new Error('expected a refusal');
}

describe('verifyDeviceList', () => {
  it('accepts the next version of exactly the devices, signed by the account identity key', () => {
    const list = sign();
    expect(verifyDeviceList(list, requirement)).toEqual({
      version: 8n,
      content: list.content,
      signature: list.signature,
    });
    expect(
      verifyDeviceList(sign(devices, { version: '30' }), { ...requirement, version: 'above' }).version,
    ).toBe(30n);
  });

  it('refuses what is malformed, not the account’s or not signed by its key with INVALID_ARGUMENT', () => {
    const cases: [SignedDeviceList | undefined, string][] = [
      [undefined, 'device_list: is required'],
      [{ content: new Uint8Array(), signature: new Uint8Array([1]) }, 'device_list.content: is required'],
      [{ ...sign(), signature: new Uint8Array() }, 'device_list.signature: is required'],
      [
        { content: new Uint8Array([0xff, 0xff, 0xff]), signature: new Uint8Array(64) },
        'device_list.content: is not a serialized sotto.common.v1.DeviceListContent',
      ],
      [
        sign(devices, { key: PrivateKey.generate() }),
        'device_list.signature: does not verify against the account identity key',
      ],
      [
        { ...sign(), content: sign(devices, { version: '9' }).content },
        'device_list.signature: does not verify against the account identity key',
      ],
      [
        sign(devices, { account: randomUUID() }),
        `device_list.content.account_id: is not this account (${accountId})`,
      ],
      [
        sign(devices, { version: '0' }),
        'device_list.content.version: must be between 1 and 9223372036854775807',
      ],
      [
        sign(devices, { version: '9223372036854775808' }),
        'device_list.content.version: must be between 1 and 9223372036854775807',
      ],
      [
        sign([devices[1], devices[0]]),
        'device_list.content.devices[1].device_id: device ids must be strictly ascending, each listed once',
      ],
      [
        sign([devices[0], devices[0]]),
        'device_list.content.devices[1].device_id: device ids must be strictly ascending, each listed once',
      ],
      [
        sign([{ deviceId: 128, registrationId: 1 }]),
        'device_list.content.devices[0].device_id: must be between 1 and 127',
      ],
    ];
    for (const [list, message] of cases) {
      expect(refusal(() => verifyDeviceList(list, requirement))).toEqual({
        code: status.INVALID_ARGUMENT,
        message,
      });
    }
  });

  it('refuses a list of the account that is not for this state of it with FAILED_PRECONDITION', () => {
    const stale = (list: SignedDeviceList, against = requirement) =>
      refusal(() => verifyDeviceList(list, against));
    expect(stale(sign(devices, { version: '7' }))).toEqual({
      code: status.FAILED_PRECONDITION,
      message: "device_list.content.version: is 7; this change needs 8, one above the stored list's",
    });
    expect(stale(sign(devices, { version: '9' })).code).toBe(status.FAILED_PRECONDITION);
    expect(stale(sign(devices, { version: '7' }), { ...requirement, version: 'above' })).toEqual({
      code: status.FAILED_PRECONDITION,
      message: "device_list.content.version: is 7; it must be above the stored list's 7",
    });
    expect(stale(sign([devices[0]]))).toEqual({
      code: status.FAILED_PRECONDITION,
      message:
        "device_list.content.devices: lists 1 (registration id 11); the account's devices will be 1 (registration id 11), 4 (registration id 44)",
    });
    expect(stale(sign([...devices, { deviceId: 9, registrationId: 99 }])).code).toBe(
      status.FAILED_PRECONDITION,
    );
    expect(stale(sign([devices[0], { deviceId: 4, registrationId: 45 }])).code).toBe(
      status.FAILED_PRECONDITION,
    );
    expect(stale(sign([])).code).toBe(status.FAILED_PRECONDITION);
  });
});
