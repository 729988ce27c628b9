import { status } from '@grpc/grpc-js';
import { addressBucket, grpcError } from '@sotto/platform/grpc';

/**
 * The rate-limit bucket of the client address the gateway passes in
 * `source`: an IPv4 address as it is, an IPv6 address by its /64 (the same
 * rule as the gateway's own limits, libs/platform/grpc addressBucket).
 */
export function sourceBucket(source: string, field = 'source'): string {
  if (source === '') throw grpcError(status.INVALID_ARGUMENT, `${field}: is required`);
  const bucket = addressBucket(source);
  if (bucket === undefined) throw grpcError(status.INVALID_ARGUMENT, `${field}: is not an IP address`);
  return bucket;
}
