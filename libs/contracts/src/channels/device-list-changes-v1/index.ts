import { DeviceListChange } from '../../generated/sotto/directory/v1/device_list_change';
import { encodeToBuffer } from '../../wire-encoding';

/**
 * Redis pub/sub from the directory to the relays: one channel for the whole
 * deployment, carrying protobuf `sotto.directory.v1.DeviceListChange`s. The
 * directory publishes one after it committed a change to an account's
 * devices; every relay drops its cached copy of that account's device list.
 * Pub/sub delivers at most once, so a subscriber that reconnects must assume
 * it missed some and drop its whole cache.
 */
export const CHANNEL = 'sotto:device-list-changes:v1';

export type Event = DeviceListChange;

export function encode(event: DeviceListChange): Buffer {
  return encodeToBuffer(DeviceListChange, event);
}

export function decode(bytes: Uint8Array): DeviceListChange {
  return DeviceListChange.decode(bytes);
}
