import { Metadata, status } from '@grpc/grpc-js';
import type { RpcException } from '@nestjs/microservices';
import { grpcError } from './errors';

/**
 * Every way the platform says "too many, too big, too fast, or not in this
 * state", and the one status code each gets. A client tells them apart by the
 * `sotto-refusal` trailer, never by parsing the message. RESOURCE_EXHAUSTED:
 * the request was fine but something is used up, so the same request may
 * succeed later or smaller. FAILED_PRECONDITION: the caller must change what
 * it knows or holds before it asks again.
 */
export const REFUSALS = {
  'rate-limited': {
    code: status.RESOURCE_EXHAUSTED,
    meaning: 'too fast: a rate limit; `retry-after-ms` says when the same call will be admitted',
  },
  'must-wait': {
    code: status.RESOURCE_EXHAUSTED,
    meaning:
      'a backup password try before its spacing allows; `retry-after-ms` and `attempts-left` say when and how many are left',
  },
  'too-large': {
    code: status.RESOURCE_EXHAUSTED,
    meaning: 'a message, field or chunk over its size limit; send less',
  },
  'too-many': {
    code: status.RESOURCE_EXHAUSTED,
    meaning: 'a list in one call longer than its limit (keys, acknowledgements, devices); split it',
  },
  quota: {
    code: status.RESOURCE_EXHAUSTED,
    meaning: 'a stored total would pass its cap (backup bytes, uploads in progress, one-time prekeys kept)',
  },
  'mailbox-full': {
    code: status.RESOURCE_EXHAUSTED,
    meaning: "a destination device's mailbox is at its cap; nothing was sent, try later",
  },
  busy: {
    code: status.RESOURCE_EXHAUSTED,
    meaning:
      'a buffer the server shares among all callers stayed full (the S3 upload buffer); nothing is lost, `retry-after-ms` says when to come back',
  },
  'device-list-mismatch': {
    code: status.FAILED_PRECONDITION,
    meaning:
      "the envelopes do not match the destination's devices; `sotto-mismatched-devices-bin` has the lists to fix",
  },
  'upload-state': {
    code: status.FAILED_PRECONDITION,
    meaning:
      'an upload resumed at the wrong offset, or already complete; read where it stands and go on from there',
  },
  'device-limit': {
    code: status.FAILED_PRECONDITION,
    meaning: 'the account already has the most devices it may have; remove one first',
  },
  'device-list-stale': {
    code: status.FAILED_PRECONDITION,
    meaning:
      "a signed device list whose version or devices are not the account's next: fetch the list and the devices, sign again",
  },
  'vault-destroyed': {
    code: status.FAILED_PRECONDITION,
    meaning: 'the backup key vault took its last wrong password; restore with the recovery key',
  },
} as const satisfies Record<string, { code: status; meaning: string }>;

export type RefusalReason = keyof typeof REFUSALS;

/** The trailer naming a refusal's reason, one of REFUSALS' keys. */
export const REFUSAL_TRAILER = 'sotto-refusal';

/** A refusal: its reason's status code, a message that names the problem, the reason in the trailer. */
export function refuse(reason: RefusalReason, message: string, metadata = new Metadata()): RpcException {
  metadata.set(REFUSAL_TRAILER, reason);
  return grpcError(REFUSALS[reason].code, message, metadata);
}

/**
 * A rate limit's refusal: the delay in words and, for clients to act on, in
 * milliseconds in the `retry-after-ms` trailer.
 */
export function throttled(what: string, retryAfterMs: number): RpcException {
  const metadata = new Metadata();
  metadata.set('retry-after-ms', String(retryAfterMs));
  return refuse('rate-limited', `${what}; retry in ${Math.ceil(retryAfterMs / 1000)} s`, metadata);
}
