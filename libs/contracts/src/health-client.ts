import { Metadata, status, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import { HealthCheckResponse_ServingStatus as Status, HealthClient } from './generated/health/v1/health';

export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

const STATUS_NAMES: ReadonlyMap<Status, ServingStatus> = new Map([
  [Status.UNKNOWN, 'UNKNOWN'],
  [Status.SERVING, 'SERVING'],
  [Status.NOT_SERVING, 'NOT_SERVING'],
  [Status.SERVICE_UNKNOWN, 'SERVICE_UNKNOWN'],
]);

/**
 * Why a TLS connection was refused, from grpc-js's words for it (OpenSSL's
 * and Node's reasons), or undefined if the failure was not about TLS.
 */
export function tlsFailure(details: string): string | undefined {
  const certificate =
    /(self[- ]signed certificate[^.,;]*|unable to (?:verify|get)[^.,;]*|certificate has expired|Hostname\/IP does not match certificate's altnames.*$|the server's certificate names[^.;]*)/i.exec(
      details,
    )?.[1];
  if (certificate !== undefined) return `certificate not trusted (${certificate})`;
  if (
    /wrong version number|packet length too long|disconnected before secure TLS|before secure TLS connection/i.test(
      details,
    )
  ) {
    return 'no TLS on this port (the server speaks plaintext or another protocol)';
  }
  const alert = /(tlsv1 alert [a-z ]+|sslv3 alert [a-z ]+|certificate required|unsupported protocol)/i.exec(
    details,
  )?.[1];
  return alert === undefined ? undefined : `TLS handshake refused (${alert})`;
}

/** Why a health check got no answer, in words a person can act on. */
function describeFailure(error: ServiceError, timeoutMs: number): string {
  if (error.code === status.DEADLINE_EXCEEDED) return `no answer within ${timeoutMs} ms`;
  if (error.code === status.UNAVAILABLE) {
    const tls = tlsFailure(error.details);
    if (tls !== undefined) return tls;
    // grpc-js wraps the socket error in prose; the socket error is what matters.
    const socket = /(connect E[A-Z]+ [^\s,]+?|getaddrinfo E[A-Z]+ [^\s,]+?)\.?(?:\s|$)/.exec(
      error.details,
    )?.[1];
    return `unreachable (${socket ?? error.details})`;
  }
  return error.details || error.message;
}

/**
 * One grpc.health.v1 Check over TLS with these credentials: the
 * ServingStatus, or the error text if the server did not answer.
 */
export async function checkHealth(
  address: string,
  channelCredentials: ChannelCredentials,
  service = '',
  timeoutMs = 2_000,
): Promise<string> {
  const client = new HealthClient(address, channelCredentials);
  try {
    return await new Promise((resolve) => {
      client.check(
        { service },
        new Metadata(),
        { deadline: new Date(Date.now() + timeoutMs) },
        (error, response) =>
          resolve(
            error ? describeFailure(error, timeoutMs) : (STATUS_NAMES.get(response.status) ?? 'UNKNOWN'),
          ),
      );
    });
  } finally {
    client.close();
  }
}

/** Waits until the server at `address` reports SERVING; rejects on timeout or if `abort` settles first. */
export async function waitForServing(
  address: string,
  options: { credentials: ChannelCredentials; timeoutMs: number; abort?: Promise<unknown> },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  let aborted: unknown;
  let isAborted = false;
  void options.abort?.then(
    (value) => {
      isAborted = true;
      aborted = value;
    },
    (error: unknown) => {
      isAborted = true;
      aborted = error;
    },
  );
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (isAborted) throw new Error(`stopped before serving: ${String(aborted)}`);
    last = await checkHealth(address, options.credentials, '', 1_000);
    if (last === 'SERVING') return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${address} not SERVING after ${options.timeoutMs} ms (last answer: ${last})`);
}
