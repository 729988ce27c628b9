import { status, type ServiceError } from '@grpc/grpc-js';
import { lastValueFrom, type Observable } from 'rxjs';
import { grpcError } from './errors';

// Codes that describe the caller's request; they pass through to the client unchanged.
const PASS_THROUGH = new Set<number>([
  status.INVALID_ARGUMENT,
  status.NOT_FOUND,
  status.ALREADY_EXISTS,
  status.PERMISSION_DENIED,
  status.UNAUTHENTICATED,
  status.FAILED_PRECONDITION,
  status.RESOURCE_EXHAUSTED,
  status.OUT_OF_RANGE,
  status.UNIMPLEMENTED,
  status.ABORTED,
]);

function isServiceError(error: unknown): error is ServiceError {
  return (
    typeof error === 'object' && error !== null && typeof (error as { code?: unknown }).code === 'number'
  );
}

/**
 * What the caller should see of another Sotto service's error: errors about
 * the request keep their code, message and metadata; an unreachable service
 * becomes UNAVAILABLE naming it; anything else is returned as it is, for the
 * exception filter to log.
 */
export function upstreamError(service: string, error: unknown): Error {
  if (!isServiceError(error)) return error instanceof Error ? error : new Error(String(error));
  if (PASS_THROUGH.has(error.code)) return grpcError(error.code, error.details, error.metadata);
  if (error.code === status.UNAVAILABLE || error.code === status.DEADLINE_EXCEEDED) {
    return grpcError(status.UNAVAILABLE, `${service} is unavailable; try again`);
  }
  return error;
}

/** Awaits a call to another Sotto service, its errors turned by upstreamError. */
export async function callUpstream<T>(service: string, call: Observable<T>): Promise<T> {
  try {
    return await lastValueFrom(call);
  } catch (error) {
    throw upstreamError(service, error);
  }
}
