import { status } from '@grpc/grpc-js';
import { grpcError } from '@sotto/platform/grpc';

const USERNAME = /^[a-z0-9_.]{3,32}$/;

/**
 * Usernames are case-insensitive: `Alice` and `alice` are one account. The
 * canonical form is lower case; anything outside `a-z 0-9 _ .` or outside
 * 3–32 characters is refused, never silently rewritten.
 */
export function canonicalUsername(input: string, field = 'username'): string {
  const lowered = input.toLowerCase();
  if (!USERNAME.test(lowered)) {
    throw grpcError(status.INVALID_ARGUMENT, `${field}: must be 3 to 32 characters of a-z, 0-9, '_' and '.'`);
  }
  return lowered;
}
