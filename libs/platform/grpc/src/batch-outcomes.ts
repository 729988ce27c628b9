import { randomUUID } from 'node:crypto';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { RpcException } from '@nestjs/microservices';
import type { CallError } from '@sotto/contracts/generated/sotto/common/v1/call_error';
import { DependencyUnavailableError } from './errors';
import { refuse } from './refusals';
import { upstreamError } from './upstream';
import type { Outcome } from '@sotto/platform/batching';

/** The most calls one batch call may carry. */
export const MAX_BATCH_CALLS = 1000;

/** What one call of a batch answers: its response, or the error it alone would have failed with. */
export type AnsweredCall<Response> = { readonly ok: Response } | { readonly error: CallError };

/** The status code this number is, if any. */
function statusOf(code: unknown): status | undefined {
  for (const value of Object.values(status)) if (typeof value !== 'string' && value === code) return value;
  return undefined;
}

function trailersOf(metadata: Metadata | undefined): CallError['trailers'] {
  if (metadata === undefined) return [];
  return Object.entries(metadata.toJSON()).flatMap(([key, values]) =>
    values.map((value) => ({ key, value: typeof value === 'string' ? Buffer.from(value, 'utf8') : value })),
  );
}

/**
 * A handler's error as a batch carries it: a deliberate gRPC error keeps its
 * code, message and trailers; anything else is a bug, reported to `onBug`
 * with a correlation id and answered INTERNAL with only that id, as the
 * exception filter answers a call alone.
 */
export function callErrorOf(
  error: unknown,
  onBug: (correlationId: string, error: unknown) => void,
): CallError {
  const inner = error instanceof RpcException ? error.getError() : error;
  // As GrpcExceptionFilter answers a call alone: a dependency that is down is UNAVAILABLE, tried again.
  if (inner instanceof DependencyUnavailableError)
    return { code: status.UNAVAILABLE, details: inner.message, trailers: [] };
  if (typeof inner === 'object' && inner !== null) {
    const { code, message, metadata } = inner as { code?: unknown; message?: unknown; metadata?: unknown };
    const known = statusOf(code);
    if (known !== undefined && known !== status.OK && typeof message === 'string') {
      return {
        code: known,
        details: message,
        trailers: trailersOf(metadata instanceof Metadata ? metadata : undefined),
      };
    }
  }
  const correlationId = randomUUID();
  onBug(correlationId, error);
  return { code: status.INTERNAL, details: `internal error (correlation id ${correlationId})`, trailers: [] };
}

/**
 * Answers each call of a batch on its own, all at once: one call's error
 * holds up no other. Refuses a batch of more than MAX_BATCH_CALLS whole.
 */
export async function answerEach<Request, Response>(
  requests: readonly Request[],
  handle: (request: Request) => Promise<Response>,
  onBug: (correlationId: string, error: unknown) => void,
): Promise<AnsweredCall<Response>[]> {
  if (requests.length > MAX_BATCH_CALLS) {
    throw refuse('too-many', `at most ${MAX_BATCH_CALLS} calls per batch, not ${requests.length}`);
  }
  const settled = await Promise.allSettled(requests.map((request) => handle(request)));
  return settled.map((result) =>
    result.status === 'fulfilled' ? { ok: result.value } : { error: callErrorOf(result.reason, onBug) },
  );
}

/**
 * One call's error from another service's batch answer, as the caller of
 * that call alone would have got it through upstreamError.
 */
export function errorOfCall(service: string, error: CallError): Error {
  const code = statusOf(error.code) ?? status.UNKNOWN;
  const metadata = new Metadata();
  for (const { key, value } of error.trailers) {
    if (key.endsWith('-bin')) metadata.add(key, Buffer.from(value));
    else metadata.add(key, Buffer.from(value).toString('utf8'));
  }
  const serviceError: ServiceError = Object.assign(new Error(`${code} ${status[code]}: ${error.details}`), {
    code,
    details: error.details,
    metadata,
  });
  return upstreamError(service, serviceError);
}

/** A batch answer's outcomes for a CallBatcher: each a response, or its error as the caller sees it. */
export function outcomesOf<Response>(
  service: string,
  answers: readonly { readonly ok?: Response; readonly error?: CallError }[],
): Outcome<Response>[] {
  return answers.map((answer) =>
    answer.error !== undefined
      ? { error: errorOfCall(service, answer.error) }
      : answer.ok !== undefined
        ? { ok: answer.ok }
        : { error: new Error(`${service} answered a batched call with neither a response nor an error`) },
  );
}
