import { Metadata } from '@grpc/grpc-js';
import { formatDeviceCredential } from '@sotto/platform/ids';

/** What identifies a registered device to the gateway: Register's answer has these fields. */
export interface DeviceCredentials {
  readonly accountId: string;
  readonly deviceId: number;
  readonly deviceSecret: string;
}

/**
 * The metadata that authenticates a call as `device`: the one `authorization`
 * entry, `<account>.<device>:<secret>`. Given `metadata`, sets the entry there
 * (replacing the one it had) and returns it; otherwise returns new metadata.
 */
export function authorizationMetadata(device: DeviceCredentials, metadata = new Metadata()): Metadata {
  metadata.set(
    'authorization',
    formatDeviceCredential({
      accountId: device.accountId,
      deviceId: device.deviceId,
      secret: device.deviceSecret,
    }),
  );
  return metadata;
}
