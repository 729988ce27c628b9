import { Metadata, status } from '@grpc/grpc-js';
import { grpcError } from '@sotto/platform/grpc';
import { MAX_ATTEMPTS } from './vault-records.repository';

// The answers a client acts on, worded once: vault.proto documents them.

export const noVault = () => grpcError(status.NOT_FOUND, 'account_id: has no vault');

export const vaultDestroyed = () =>
  grpcError(
    status.FAILED_PRECONDITION,
    `vault destroyed after ${MAX_ATTEMPTS} failed attempts; restore with the recovery key`,
  );

export const vaultReplaced = () =>
  grpcError(status.ABORTED, 'the vault was replaced meanwhile (its password changed); start again');

export function attemptsInFlight(retryAfterMs: number) {
  const metadata = new Metadata();
  metadata.set('retry-after-ms', String(retryAfterMs));
  return grpcError(
    status.RESOURCE_EXHAUSTED,
    `all ${MAX_ATTEMPTS} attempts are in flight; retry in ${Math.ceil(retryAfterMs / 1000)} s`,
    metadata,
  );
}

export function wrongPassword(attemptsLeft: number) {
  const metadata = new Metadata();
  metadata.set('attempts-left', String(attemptsLeft));
  return grpcError(status.UNAUTHENTICATED, `wrong password; ${attemptsLeft} attempts left`, metadata);
}
