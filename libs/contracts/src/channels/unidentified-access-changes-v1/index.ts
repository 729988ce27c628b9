import { UnidentifiedAccessChange } from '../../generated/sotto/directory/v1/unidentified_access_change';
import { encodeToBuffer } from '../../wire-encoding';

/**
 * Redis pub/sub from the directory to the gateways: one channel for the whole
 * deployment, carrying protobuf `sotto.directory.v1.UnidentifiedAccessChange`s.
 * The directory publishes one after it committed a change to an account's
 * unidentified-access key or to whether it accepts sealed messages from
 * anyone; every gateway drops its cached copy of that account's access.
 * Pub/sub delivers at most once, so a subscriber that reconnects must assume
 * it missed some and drop its whole cache.
 */
export const CHANNEL = 'sotto:unidentified-access-changes:v1';

export type Event = UnidentifiedAccessChange;

export function encode(event: UnidentifiedAccessChange): Buffer {
  return encodeToBuffer(UnidentifiedAccessChange, event);
}

export function decode(bytes: Uint8Array): UnidentifiedAccessChange {
  return UnidentifiedAccessChange.decode(bytes);
}
