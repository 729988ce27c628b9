import { randomBytes } from 'node:crypto';
import { IdentityKeyPair, PrivateKey } from '@signalapp/libsignal-client';
import { encodeSignedDeviceList, signDeviceList } from './device-list';
import { openProvisioning, sealProvisioning, type Provisioning } from './provisioning';

const ACCOUNT = '0190f1d2-7a3b-7c4d-8e5f-a1b2c3d4e5f6';

describe('provisioning', () => {
  const identity = IdentityKeyPair.generate();
  const ephemeral = PrivateKey.generate();
  const token = new Uint8Array(randomBytes(32));
  const list = {
    accountId: ACCOUNT,
    version: 1n,
    devices: [{ deviceId: 1, registrationId: 7 }],
    signedAtMs: 1,
  };
  const provisioning: Provisioning = {
    v: 1,
    accountId: ACCOUNT,
    username: 'bob',
    identityKeyPair: Buffer.from(identity.serialize()).toString('base64'),
    profileKey: randomBytes(32).toString('base64'),
    deviceList: encodeSignedDeviceList(signDeviceList(list, identity.privateKey)),
    contacts: { byName: { alice: 'a' }, identities: {}, profileKeys: {}, deviceLists: {} },
    history: [
      {
        kind: 'message',
        direction: 'in',
        from: 'alice',
        to: 'bob',
        text: 'hi',
        sentAt: '2026-01-01T00:00:00.000Z',
      },
    ],
  };
  const expected = { username: 'Bob', accountId: ACCOUNT };

  it('opens with the private key and the token, giving the identity and the verified list', () => {
    const sealed = sealProvisioning(provisioning, ephemeral.getPublicKey(), token);
    const opened = openProvisioning(sealed, ephemeral, token, expected);
    expect(opened.provisioning).toEqual(provisioning);
    expect(opened.identity.publicKey.equals(identity.publicKey)).toBe(true);
    expect(opened.deviceList).toEqual(list);
    // The server relays it and sees no key in it.
    expect(Buffer.from(sealed).includes(Buffer.from(provisioning.identityKeyPair))).toBe(false);
  });

  it('refuses to open under another key or another token, or once tampered with', () => {
    const sealed = sealProvisioning(provisioning, ephemeral.getPublicKey(), token);
    const refusal = "the approval cannot be opened: it was not sealed to this device's link code";
    expect(() => openProvisioning(sealed, PrivateKey.generate(), token, expected)).toThrow(refusal);
    expect(() => openProvisioning(sealed, ephemeral, new Uint8Array(randomBytes(32)), expected)).toThrow(
      refusal,
    );
    const tampered = Buffer.from(sealed);
    tampered[tampered.length - 1] ^= 1;
    expect(() => openProvisioning(tampered, ephemeral, token, expected)).toThrow(refusal);
    expect(() => openProvisioning(new Uint8Array(10), ephemeral, token, expected)).toThrow(refusal);
  });

  it('refuses an approval from another account than the one the user asked to link to', () => {
    const sealed = sealProvisioning(provisioning, ephemeral.getPublicKey(), token);
    expect(() => openProvisioning(sealed, ephemeral, token, { ...expected, username: 'carol' })).toThrow(
      'the link was approved by a device of bob, not carol: not linking',
    );
    expect(() => openProvisioning(sealed, ephemeral, token, { ...expected, accountId: 'other' })).toThrow(
      'the approval is of another account than the server linked',
    );
  });

  it('refuses a device list the identity key it carries did not sign', () => {
    const forged = {
      ...provisioning,
      deviceList: encodeSignedDeviceList(signDeviceList(list, IdentityKeyPair.generate().privateKey)),
    };
    const sealed = sealProvisioning(forged, ephemeral.getPublicKey(), token);
    expect(() => openProvisioning(sealed, ephemeral, token, expected)).toThrow(
      "the device list of bob is not signed by bob's identity key",
    );
  });

  it('refuses what is not a provisioning, though sealed right', () => {
    const sealed = ephemeral
      .getPublicKey()
      .seal(new Uint8Array(Buffer.from('{"v":2}')), 'sotto provisioning v1', token);
    expect(() => openProvisioning(sealed, ephemeral, token, expected)).toThrow(
      'the approval cannot be read: it is not what a Sotto device sends',
    );
  });
});
