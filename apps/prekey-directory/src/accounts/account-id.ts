import { status } from '@grpc/grpc-js';
import { grpcError } from '@sotto/platform/grpc';

/** An account's id: a UUID the directory assigned. Branded so a username can never be passed by mistake. */
export type AccountId = string & { readonly __brand: 'AccountId' };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function parseAccountId(value: string, field: string): AccountId {
  if (!UUID.test(value)) throw grpcError(status.INVALID_ARGUMENT, `${field}: is not an account id`);
  return value as AccountId;
}

export function parseDeviceId(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 1 || value > 0x7fffffff) {
    throw grpcError(status.INVALID_ARGUMENT, `${field}: must be a device id of 1 or more`);
  }
  return value;
}
