import { status, type ServiceError } from '@grpc/grpc-js';
import { tlsFailure } from '@sotto/contracts';

/** A failure worth showing a person as one line. */
export class SottoError extends Error {
  constructor(
    message: string,
    readonly code?: status,
    /** For a refusal to be tried again later (RESOURCE_EXHAUSTED): how long to wait, from the server's `retry-after-ms`. */
    readonly retryAfterMs?: number,
    /**
     * Why the server refused, from its `sotto-refusal` trailer: `rate-limited`, `must-wait`,
     * `too-large`, `too-many`, `quota`, `mailbox-full`, `busy`, `device-list-mismatch`,
     * `upload-state` or `vault-destroyed` (README, "Errors").
     */
    readonly reason?: string,
  ) {
    super(message);
    this.name = 'SottoError';
  }
}

/**
 * The server refused for now and said how long to wait (RESOURCE_EXHAUSTED
 * with `retry-after-ms`): a rate limit, or a vault password try that must
 * wait. Trying again after `retryAfterMs` can succeed; sooner cannot.
 */
export class ThrottledError extends SottoError {
  declare readonly retryAfterMs: number;

  constructor(message: string, retryAfterMs: number, reason?: string) {
    super(message, status.RESOURCE_EXHAUSTED, retryAfterMs, reason);
    this.name = 'ThrottledError';
  }
}

/**
 * A contact's identity key is not the one this device accepted: whoever
 * answers for them now may not be them. Nothing is sent until the user
 * compares the new safety number and accepts it (SottoClient.trust).
 */
export class UntrustedIdentityError extends SottoError {
  constructor(readonly username: string) {
    super(
      `the safety number with ${username} changed, so nothing was sent: compare it with \`sotto safety-number ${username}\` and accept it with \`sotto trust ${username}\``,
    );
    this.name = 'UntrustedIdentityError';
  }
}

function isServiceError(error: unknown): error is ServiceError {
  return (
    typeof error === 'object' && error !== null && typeof (error as { code?: unknown }).code === 'number'
  );
}

/** The server's `retry-after-ms` trailer of a refusal, if it sent a sane one. */
export function retryAfterOf(error: ServiceError): number | undefined {
  const value = trailerOf(error, 'retry-after-ms');
  return value !== undefined && /^\d{1,15}$/.test(value) ? Number(value) : undefined;
}

/** The server's `sotto-refusal` trailer: a reason named in lower case and dashes, if it sent one. */
export function reasonOf(error: ServiceError): string | undefined {
  const value = trailerOf(error, 'sotto-refusal');
  return value !== undefined && /^[a-z-]{1,40}$/.test(value) ? value : undefined;
}

function trailerOf(error: ServiceError, key: string): string | undefined {
  // A ServiceError made by hand (or by an older grpc-js) may carry no metadata.
  const metadata = error.metadata as ServiceError['metadata'] | undefined;
  const [value] = metadata?.get(key) ?? [];
  return typeof value === 'string' ? value : undefined;
}

/** Turns a gRPC failure into words: unreachable or untrusted servers, refused credentials, throttling. */
export function explain(error: unknown, server: string): Error {
  if (error instanceof SottoError) return error;
  if (!isServiceError(error)) return error instanceof Error ? error : new Error(String(error));
  switch (error.code) {
    case status.UNAVAILABLE: {
      // The server answered, and says what behind it is down ("…; try again"): its words, not "unreachable".
      if (/; try again$/.test(error.details))
        return new SottoError(`server ${server}: ${error.details}`, error.code);
      const tls = tlsFailure(error.details);
      if (tls === undefined) return new SottoError(`server ${server} is unreachable`, error.code);
      return new SottoError(
        tls.startsWith('certificate not trusted')
          ? `server ${server}: ${tls}; give the CA that issued it with --ca FILE or SOTTO_CA`
          : `server ${server}: ${tls}`,
        error.code,
      );
    }
    case status.DEADLINE_EXCEEDED:
      // The gateway's own (a service behind it did not answer) says what that means, e.g. that a
      // message may have been accepted; this client's deadline says only "Deadline exceeded …".
      return /^deadline exceeded/i.test(error.details) || error.details === ''
        ? new SottoError(`server ${server} did not answer in time`, error.code)
        : new SottoError(`server ${server}: ${error.details}`, error.code);
    case status.UNAUTHENTICATED:
      return new SottoError(`this device is not registered with ${server} (${error.details})`, error.code);
    case status.RESOURCE_EXHAUSTED: {
      // "too many …; retry in N s" (or another refusal with a wait): the wait as the trailer says it.
      const retryAfterMs = retryAfterOf(error);
      const what = error.details || error.message;
      if (retryAfterMs === undefined) return new SottoError(what, error.code, undefined, reasonOf(error));
      const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
      return new ThrottledError(
        `${what.replace(/; retry in \d+ s$/, '')}; try again in ${seconds} s`,
        retryAfterMs,
        reasonOf(error),
      );
    }
    default:
      return new SottoError(error.details || error.message, error.code, undefined, reasonOf(error));
  }
}

/**
 * The server wants a message encrypted to a device the account's own
 * devices did not sign onto its device list, even after the list was fetched
 * again: a device added behind the account's back (a "ghost"). Nothing was
 * sent to the account.
 */
export class GhostDeviceError extends SottoError {
  constructor(
    readonly username: string,
    readonly deviceId: number,
  ) {
    super(
      `${username}'s server lists device ${deviceId} that ${username}'s devices did not sign: not sending`,
    );
    this.name = 'GhostDeviceError';
  }
}
