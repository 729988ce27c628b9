import { IdentityKeyPair } from '@signalapp/libsignal-client';
import { DeviceListContent } from '@sotto/contracts/generated/sotto/common/v1/device_list';
import {
  decodeSignedDeviceList,
  deviceListChanges,
  encodeSignedDeviceList,
  nextDeviceList,
  signDeviceList,
  verifyDeviceList,
  type DeviceList,
} from './device-list';

const ACCOUNT = '0190f1d2-7a3b-7c4d-8e5f-a1b2c3d4e5f6';

describe('device lists', () => {
  const identity = IdentityKeyPair.generate();
  const list: DeviceList = {
    accountId: ACCOUNT,
    version: 3n,
    devices: [
      { deviceId: 1, registrationId: 111 },
      { deviceId: 4, registrationId: 444 },
    ],
    signedAtMs: 1_700_000_000_000,
  };

  it('verifies what the account identity key signed, and gives the list back', () => {
    const signed = signDeviceList(list, identity.privateKey);
    expect(verifyDeviceList(signed, identity.publicKey, { accountId: ACCOUNT })).toEqual(list);
    expect(
      verifyDeviceList(decodeSignedDeviceList(encodeSignedDeviceList(signed)), identity.publicKey, {
        accountId: ACCOUNT,
        highestSeen: 3n,
      }),
    ).toEqual(list);
  });

  it('signs the devices by id ascending whatever order they are given in, and refuses one listed twice', () => {
    const signed = signDeviceList({ ...list, devices: [...list.devices].reverse() }, identity.privateKey);
    expect(DeviceListContent.decode(signed.content).devices.map((d) => d.deviceId)).toEqual([1, 4]);
    expect(() =>
      signDeviceList(
        { ...list, devices: [...list.devices, { deviceId: 4, registrationId: 5 }] },
        identity.privateKey,
      ),
    ).toThrow('device 4 is listed twice');
  });

  it('refuses a list signed by another key', () => {
    const signed = signDeviceList(list, IdentityKeyPair.generate().privateKey);
    expect(() => verifyDeviceList(signed, identity.publicKey, { accountId: ACCOUNT, name: 'bob' })).toThrow(
      "the device list of bob is not signed by bob's identity key",
    );
  });

  it('refuses content changed after signing: a device added, a registration id swapped', () => {
    const signed = signDeviceList(list, identity.privateKey);
    const content = DeviceListContent.decode(signed.content);
    for (const tampered of [
      { ...content, devices: [...content.devices, { deviceId: 9, registrationId: 999 }] },
      { ...content, devices: [content.devices[0], { deviceId: 4, registrationId: 445 }] },
      { ...content, version: '4' },
    ]) {
      expect(() =>
        verifyDeviceList(
          { content: DeviceListContent.encode(tampered).finish(), signature: signed.signature },
          identity.publicKey,
          { accountId: ACCOUNT, name: 'bob' },
        ),
      ).toThrow("not signed by bob's identity key");
    }
    const flipped = Buffer.from(signed.signature);
    flipped[5] ^= 1;
    expect(() =>
      verifyDeviceList({ ...signed, signature: flipped }, identity.publicKey, { accountId: ACCOUNT }),
    ).toThrow('not signed');
    expect(() =>
      verifyDeviceList({ ...signed, signature: new Uint8Array() }, identity.publicKey, {
        accountId: ACCOUNT,
      }),
    ).toThrow('not signed');
  });

  it('refuses a signature over the bare content, without the context', () => {
    const content = DeviceListContent.encode({
      accountId: ACCOUNT,
      version: '1',
      devices: [{ deviceId: 1, registrationId: 1 }],
      signedAtMs: '0',
    }).finish();
    const signature = identity.privateKey.sign(new Uint8Array(content));
    expect(() =>
      verifyDeviceList({ content, signature }, identity.publicKey, { accountId: ACCOUNT }),
    ).toThrow('not signed');
  });

  it("refuses devices out of order or twice, even when signed (the account's own bug, or a replayed key)", () => {
    for (const devices of [
      [
        { deviceId: 4, registrationId: 444 },
        { deviceId: 1, registrationId: 111 },
      ],
      [
        { deviceId: 1, registrationId: 111 },
        { deviceId: 1, registrationId: 112 },
      ],
    ]) {
      const content = DeviceListContent.encode({
        accountId: ACCOUNT,
        version: '2',
        devices,
        signedAtMs: '0',
      }).finish();
      const signature = identity.privateKey.sign(
        new Uint8Array(Buffer.concat([Buffer.from('sotto device list v1\0'), content])),
      );
      expect(() =>
        verifyDeviceList({ content, signature }, identity.publicKey, { accountId: ACCOUNT, name: 'bob' }),
      ).toThrow('the device list of bob does not list its devices by id ascending, each once');
    }
  });

  it("refuses a version lower than the highest seen, and another account's list", () => {
    const signed = signDeviceList(list, identity.privateKey);
    expect(() =>
      verifyDeviceList(signed, identity.publicKey, { accountId: ACCOUNT, highestSeen: 4n, name: 'bob' }),
    ).toThrow('the server gave an old device list of bob (version 3, after version 4): not sending');
    expect(() =>
      verifyDeviceList(signed, identity.publicKey, {
        accountId: '0190f1d2-0000-7000-8000-000000000000',
        name: 'carol',
      }),
    ).toThrow('the device list the server gave for carol is of another account');
    expect(() => signDeviceList({ ...list, version: 0n }, identity.privateKey)).toThrow(
      'the version starts at 1',
    );
  });

  it('makes the next list one version up, and tells what was added and removed', () => {
    const added = nextDeviceList(list, { add: { deviceId: 2, registrationId: 222 } }, 5);
    expect(added).toEqual({
      accountId: ACCOUNT,
      version: 4n,
      devices: [
        { deviceId: 1, registrationId: 111 },
        { deviceId: 2, registrationId: 222 },
        { deviceId: 4, registrationId: 444 },
      ],
      signedAtMs: 5,
    });
    const removed = nextDeviceList(added, { remove: 1 }, 6);
    expect(removed.devices.map((d) => d.deviceId)).toEqual([2, 4]);
    expect(deviceListChanges(list, added)).toEqual({ added: [2], removed: [] });
    expect(deviceListChanges(added, removed)).toEqual({ added: [], removed: [1] });
  });

  it('refuses a kept list that is not one', () => {
    expect(() => decodeSignedDeviceList('////')).toThrow('a kept device list cannot be read');
  });
});
