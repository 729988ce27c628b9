import { Metadata, status } from '@grpc/grpc-js';
import { grpcError, throttled } from '@sotto/platform/grpc';
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

export const attemptsInFlight = (retryAfterMs: number) =>
  throttled(`all ${MAX_ATTEMPTS} attempts are in flight`, retryAfterMs);

export function wrongPassword(attemptsLeft: number) {
  const metadata = new Metadata();
  metadata.set('attempts-left', String(attemptsLeft));
  return grpcError(status.UNAUTHENTICATED, `wrong password; ${attemptsLeft} attempts left`, metadata);
}
