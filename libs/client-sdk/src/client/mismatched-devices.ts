import { status, type ServiceError } from '@grpc/grpc-js';
import {
  MismatchedDevices,
  MultiRecipientMismatch,
} from '@sotto/contracts/generated/sotto/common/v1/envelope';

/** The trailer in which the relay names the devices a refused send got wrong. */
export const MISMATCHED_DEVICES_TRAILER = 'sotto-mismatched-devices-bin';

/** The devices a send got wrong, when that is why the server refused it; otherwise undefined. */
export function mismatchedDevices(error: unknown): MismatchedDevices | undefined {
  const trailer = (error as ServiceError).metadata?.get(MISMATCHED_DEVICES_TRAILER)[0];
  if ((error as ServiceError).code !== status.FAILED_PRECONDITION || !Buffer.isBuffer(trailer))
    return undefined;
  return MismatchedDevices.decode(trailer);
}

/** The trailer in which the relay names, per recipient, the devices a refused multi-recipient send got wrong. */
export const MULTI_RECIPIENT_MISMATCH_TRAILER = 'sotto-multi-recipient-mismatch-bin';

/** Each recipient's wrong devices, when that is why the server refused a multi-recipient send; otherwise undefined. */
export function multiRecipientMismatch(error: unknown): MultiRecipientMismatch | undefined {
  const trailer = (error as ServiceError).metadata?.get(MULTI_RECIPIENT_MISMATCH_TRAILER)[0];
  if ((error as ServiceError).code !== status.FAILED_PRECONDITION || !Buffer.isBuffer(trailer))
    return undefined;
  return MultiRecipientMismatch.decode(trailer);
}

/** How an account's sessions are mended before a refused send is tried again. */
export interface SessionRepair {
  /** Devices whose sessions are deleted: removed ones, and stale ones that are rebuilt. */
  readonly drop: readonly number[];
  /** The account's device list afterwards, before `fetch` adds what it sets up. */
  readonly keep: readonly number[];
  /** Devices to fetch bundles for and start sessions with: new ones, and stale ones again. */
  readonly fetch: readonly number[];
}

export function sessionRepair(known: readonly number[], mismatch: MismatchedDevices): SessionRepair {
  return {
    drop: [...new Set([...mismatch.extraDeviceIds, ...mismatch.staleDeviceIds])],
    keep: known.filter((id) => !mismatch.extraDeviceIds.includes(id)),
    fetch: [...mismatch.missingDeviceIds, ...mismatch.staleDeviceIds],
  };
}
