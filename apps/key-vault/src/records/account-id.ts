import { status } from '@grpc/grpc-js';
import { grpcError } from '@sotto/platform/grpc';

/** An account's id, as the directory assigned it. Branded so that no other string stands in for one. */
export type AccountId = string & { readonly __brand: 'AccountId' };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function parseAccountId(value: string, field = 'account_id'): AccountId {
  if (value === '') throw grpcError(status.INVALID_ARGUMENT, `${field}: is required`);
  if (!UUID.test(value)) throw grpcError(status.INVALID_ARGUMENT, `${field}: is not an account id`);
  return value as AccountId;
}
