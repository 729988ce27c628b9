import { status } from '@grpc/grpc-js';
import { grpcError } from '@sotto/platform/grpc';
import { isUuid } from '@sotto/platform/ids';

/** An upload's id, as CreateUpload handed it out. */
export type UploadId = string & { readonly __brand: 'UploadId' };

const SHA256_BYTES = 32;

export function parseUploadId(value: string, field = 'upload_id'): UploadId {
  if (!isUuid(value)) throw grpcError(status.INVALID_ARGUMENT, `${field}: is not an upload id`);
  return value as UploadId;
}

export function parseSha256(value: Uint8Array, field = 'sha256'): Uint8Array {
  if (value.length !== SHA256_BYTES) {
    throw grpcError(
      status.INVALID_ARGUMENT,
      `${field}: must be a SHA-256 digest of ${SHA256_BYTES} bytes, got ${value.length}`,
    );
  }
  return value;
}

/**
 * A uint64 field (decoded as a decimal string) as a number. Sizes and offsets
 * beyond 2^53 cannot occur in a quota-bounded store, so they are refused
 * rather than rounded.
 */
export function parseUint64(value: string, field: string, { min = 0 } = {}): number {
  const parsed = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(parsed) || parsed < min) {
    throw grpcError(
      status.INVALID_ARGUMENT,
      min > 0 ? `${field}: must be a whole number of at least ${min}` : `${field}: must be a whole number`,
    );
  }
  return parsed;
}
