import { Metadata } from '@grpc/grpc-js';
import { parseDeviceCredential } from '@sotto/platform/ids';
import { authorizationMetadata } from './authorization';

describe('authorizationMetadata', () => {
  const device = {
    accountId: '0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b',
    deviceId: 3,
    deviceSecret: 'A'.repeat(43),
  };

  it('carries the credential as the gateway reads it', () => {
    const metadata = authorizationMetadata(device);
    expect(metadata.get('authorization')).toEqual([`${device.accountId}.3:${'A'.repeat(43)}`]);
    expect(parseDeviceCredential(metadata.get('authorization')[0])).toMatchObject({ ok: true });
  });

  it('replaces the credential of metadata it is given, keeping the rest', () => {
    const metadata = new Metadata();
    metadata.set('x-other', 'kept');
    authorizationMetadata(device, metadata);
    expect(authorizationMetadata({ ...device, deviceSecret: 'B'.repeat(43) }, metadata)).toBe(metadata);
    expect(metadata.get('authorization')).toEqual([`${device.accountId}.3:${'B'.repeat(43)}`]);
    expect(metadata.get('x-other')).toEqual(['kept']);
  });
});
