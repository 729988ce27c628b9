import { status } from '@grpc/grpc-js';
import { grpcError, refuse } from '@sotto/platform/grpc';

/** A fixed-size protocol message (an OPAQUE message, a proof): anything else is malformed. */
export function exactBytes(value: Uint8Array, length: number, field: string): Buffer {
  if (value.length === 0) throw grpcError(status.INVALID_ARGUMENT, `${field}: is required`);
  if (value.length !== length) {
    throw grpcError(status.INVALID_ARGUMENT, `${field}: must be ${length} bytes, not ${value.length}`);
  }
  return Buffer.from(value);
}

/** An opaque blob the vault only stores: required, and bounded. */
export function boundedBytes(value: Uint8Array, maxLength: number, field: string): Buffer {
  if (value.length === 0) throw grpcError(status.INVALID_ARGUMENT, `${field}: is required`);
  if (value.length > maxLength) {
    throw refuse('too-large', `${field}: at most ${maxLength} bytes, not ${value.length}`);
  }
  return Buffer.from(value);
}

const TOKEN = /^[A-Za-z0-9_-]{22}$/;

/** An id or token the vault handed out: 16 random bytes, base64url. */
export function parseToken(value: string, field: string, what: string): string {
  if (value === '') throw grpcError(status.INVALID_ARGUMENT, `${field}: is required`);
  if (!TOKEN.test(value)) throw grpcError(status.INVALID_ARGUMENT, `${field}: is not ${what}`);
  return value;
}
