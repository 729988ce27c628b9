import { status } from '@grpc/grpc-js';
import {
  parseAccountId,
  parseDeviceId,
  type AccountId,
  type DeviceId,
  type Parsed,
} from '@sotto/platform/ids';
import { grpcError } from './errors';

/** A parsed request field, or INVALID_ARGUMENT with the message that names it. */
export function validArgument<T>(parsed: Parsed<T>): T {
  if (parsed.ok) return parsed.value;
  throw grpcError(status.INVALID_ARGUMENT, parsed.error.message);
}

/** An account id from a request, by the one rule (@sotto/platform/ids); INVALID_ARGUMENT naming `field` otherwise. */
export function requireAccountId(value: string, field = 'account_id'): AccountId {
  return validArgument(parseAccountId(value, field));
}

/** A device id from a request, by the one rule (@sotto/platform/ids); INVALID_ARGUMENT naming `field` otherwise. */
export function requireDeviceId(value: number, field = 'device_id'): DeviceId {
  return validArgument(parseDeviceId(value, field));
}
