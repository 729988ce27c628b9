import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import type { CallError } from '@sotto/contracts/generated/sotto/common/v1/call_error';
import type {
  ConnectRequest,
  ConnectResponse,
  SendRequest,
  SendResponse,
  StreamSendResult,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';

/** What a sender needs of a Connect call (grpc-js's ClientDuplexStream): its messages and its end, and writing. */
export interface ConnectCall {
  on(event: 'data', listener: (message: ConnectResponse) => void): unknown;
  on(event: 'error', listener: (error: Partial<ServiceError>) => void): unknown;
  on(event: 'end' | 'close', listener: () => void): unknown;
  write(message: ConnectRequest): unknown;
}

interface Pending {
  readonly resolve: (response: SendResponse) => void;
  readonly reject: (error: ServiceError) => void;
  readonly timer?: NodeJS.Timeout;
}

/** The status code this number is; UNKNOWN for one grpc-js does not know. */
function statusOf(code: unknown): status {
  for (const value of Object.values(status)) if (typeof value !== 'string' && value === code) return value;
  return status.UNKNOWN;
}

/** A failure as grpc-js reports a unary call's: code, details and trailers, with the same message. */
function serviceError(code: status, details: string, metadata = new Metadata()): ServiceError {
  return Object.assign(new Error(`${code} ${status[code] ?? 'UNKNOWN'}: ${details}`), {
    code,
    details,
    metadata,
  });
}

/**
 * A send's error on the stream as the unary Send would have failed: the
 * same code, details and trailers, so what reads a unary failure (the
 * mismatched devices, `retry-after-ms`) reads this one unchanged. A trailer
 * grpc-js would not have accepted either is left out.
 */
export function serviceErrorOf(error: CallError): ServiceError {
  const metadata = new Metadata();
  for (const { key, value } of error.trailers) {
    try {
      if (key.endsWith('-bin')) metadata.add(key, Buffer.from(value));
      else metadata.add(key, Buffer.from(value).toString('utf8'));
    } catch {
      // A key or value no HTTP/2 trailer could carry.
    }
  }
  return serviceError(statusOf(error.code), error.details, metadata);
}

/**
 * Sends on an open Connect stream, as a connected device does instead of
 * calling Send (no new HTTP/2 stream, headers and credential check per
 * message). Each send gets a request id, and settles with the result the
 * gateway answers with that id: Send's response, or the error Send would
 * have failed with. A send not answered within `deadlineMs` fails with
 * DEADLINE_EXCEEDED; sends pending when the stream ends fail with
 * UNAVAILABLE. Either way, whether the gateway accepted it is unknown.
 */
export class StreamSender {
  private lastRequestId = 0;
  private readonly pending = new Map<string, Pending>();
  /** Set once the stream ends or fails; `failure` says why it failed. */
  private over?: { readonly failure?: string };
  private whenIdle: (() => void)[] = [];

  constructor(private readonly call: ConnectCall) {
    call.on('data', (message: ConnectResponse) => {
      if (message.sendResult) this.settle(message.sendResult);
    });
    call.on('error', (error: Partial<ServiceError>) => {
      this.over ??= { failure: error.details ?? error.message ?? 'no reason given' };
    });
    // After every message the stream carried, so no answer that came is lost.
    call.on('end', () => this.end());
    call.on('close', () => this.end());
  }

  /** Whether sends can still go on the stream. */
  get open(): boolean {
    return this.over === undefined;
  }

  /** Sends not yet answered. */
  get inFlight(): number {
    return this.pending.size;
  }

  send(request: SendRequest, options: { deadlineMs?: number } = {}): Promise<SendResponse> {
    if (!this.open) return Promise.reject(this.endedError());
    this.lastRequestId += 1;
    const requestId = String(this.lastRequestId);
    return new Promise<SendResponse>((resolve, reject) => {
      const timer =
        options.deadlineMs === undefined
          ? undefined
          : setTimeout(
              () =>
                this.answer(requestId, () =>
                  serviceError(status.DEADLINE_EXCEEDED, `Deadline exceeded after ${options.deadlineMs} ms`),
                ),
              options.deadlineMs,
            );
      this.pending.set(requestId, { resolve, reject, ...(timer === undefined ? {} : { timer }) });
      this.call.write({ send: { requestId, request } });
    });
  }

  /** Resolves once no send is pending (at once if none is). */
  idle(): Promise<void> {
    if (this.pending.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.whenIdle.push(resolve));
  }

  private settle(result: StreamSendResult): void {
    const { sent, error } = result;
    this.answer(result.requestId, () =>
      error !== undefined
        ? serviceErrorOf(error)
        : (sent ??
          serviceError(status.UNKNOWN, 'the gateway answered a send with neither a response nor an error')),
    );
  }

  /** Settles a pending send with what `outcome` makes; an answer to no pending send (its deadline passed) is dropped. */
  private answer(requestId: string, outcome: () => SendResponse | ServiceError): void {
    const pending = this.pending.get(requestId);
    if (pending === undefined) return;
    this.pending.delete(requestId);
    clearTimeout(pending.timer);
    const settled = outcome();
    if (settled instanceof Error) pending.reject(settled);
    else pending.resolve(settled);
    if (this.pending.size === 0) this.whenIdle.splice(0).forEach((resolve) => resolve());
  }

  private end(): void {
    this.over ??= {};
    for (const requestId of [...this.pending.keys()]) this.answer(requestId, () => this.endedError());
  }

  private endedError(): ServiceError {
    const failure = this.over?.failure;
    const how = failure === undefined ? 'ended' : `failed (${failure})`;
    return serviceError(
      status.UNAVAILABLE,
      `the Connect stream ${how} before the send was answered; try again`,
    );
  }
}
