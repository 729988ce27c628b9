import { Metadata, status } from '@grpc/grpc-js';
import { grpcError, refuse, throttled } from '@sotto/platform/grpc';
import type { AccountId } from '@sotto/platform/ids';
import { MAX_ATTEMPTS } from './vault-records.repository';

// The answers a client acts on, worded once: vault.proto documents them.

/**
 * Trailing metadata for the gateway only: the account whose try failed, so it
 * can tell the account's devices. The gateway does not pass it on.
 */
export const ACCOUNT_ID_METADATA = 'account-id';

export const noVault = () => grpcError(status.NOT_FOUND, 'account_id: has no vault');

export function vaultDestroyed(accountId?: AccountId) {
  const message = `vault destroyed after ${MAX_ATTEMPTS} failed attempts; restore with the recovery key`;
  if (accountId === undefined) return refuse('vault-destroyed', message);
  const metadata = new Metadata();
  metadata.set(ACCOUNT_ID_METADATA, accountId);
  return refuse('vault-destroyed', message, metadata);
}

export const vaultReplaced = () =>
  grpcError(status.ABORTED, 'the vault was replaced meanwhile (its password changed); start again');

export const attemptsInFlight = (retryAfterMs: number) =>
  throttled(`all ${MAX_ATTEMPTS} attempts are in flight`, retryAfterMs);

/**
 * A try refused because the one before it was too recent: nothing was spent.
 * Worded as `throttled` words it, with the tries left beside the delay.
 */
export function mustWait(waitMs: number, attemptsLeft: number) {
  const metadata = new Metadata();
  metadata.set('retry-after-ms', String(waitMs));
  metadata.set('attempts-left', String(attemptsLeft));
  return refuse(
    'must-wait',
    `password tries are spaced out: the next is allowed in ${formatWait(waitMs)} ` +
      `(${attemptsLeft} attempts left); retry in ${Math.ceil(waitMs / 1000)} s`,
    metadata,
  );
}

/** A wait in words: "59 s", "1 h", "3 h 59 min". */
export function formatWait(waitMs: number): string {
  const seconds = Math.ceil(waitMs / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.ceil(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return rest === 0 ? `${hours} h` : `${hours} h ${rest} min`;
}

export function wrongPassword(attemptsLeft: number, accountId: AccountId, waitMs = 0) {
  const metadata = new Metadata();
  metadata.set('attempts-left', String(attemptsLeft));
  metadata.set(ACCOUNT_ID_METADATA, accountId);
  let message = `wrong password; ${attemptsLeft} attempts left`;
  if (waitMs > 0 && attemptsLeft > 0) {
    metadata.set('next-try-after-ms', String(waitMs));
    message += `; the next try is allowed in ${formatWait(waitMs)}`;
  }
  return grpcError(status.UNAUTHENTICATED, message, metadata);
}
