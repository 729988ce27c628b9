import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { HealthCheckResponse_ServingStatus as Status, HealthClient } from './generated/health/v1/health';

export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

const STATUS_NAMES: ReadonlyMap<Status, ServingStatus> = new Map([
  [Status.UNKNOWN, 'UNKNOWN'],
  [Status.SERVING, 'SERVING'],
  [Status.NOT_SERVING, 'NOT_SERVING'],
  [Status.SERVICE_UNKNOWN, 'SERVICE_UNKNOWN'],
]);

/** Why a health check got no answer, in words a person can act on. */
function describeFailure(error: ServiceError, timeoutMs: number): string {
  if (error.code === status.DEADLINE_EXCEEDED) return `no answer within ${timeoutMs} ms`;
  if (error.code === status.UNAVAILABLE) {
    // grpc-js wraps the socket error in prose; the socket error is what matters.
    const socket = /(connect E[A-Z]+ [^\s,]+?|getaddrinfo E[A-Z]+ [^\s,]+?)\.?(?:\s|$)/.exec(
      error.details,
    )?.[1];
    return `unreachable (${socket ?? error.details})`;
  }
  return error.details || error.message;
}

/** One grpc.health.v1 Check: the ServingStatus, or the error text if the server did not answer. */
export async function checkHealth(address: string, service = '', timeoutMs = 2_000): Promise<string> {
  const client = new HealthClient(address, credentials.createInsecure());
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
  options: { timeoutMs: number; abort?: Promise<unknown> },
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
    last = await checkHealth(address, '', 1_000);
    if (last === 'SERVING') return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${address} not SERVING after ${options.timeoutMs} ms (last answer: ${last})`);
}
