import { randomUUID } from 'node:crypto';
import { Catch, type ArgumentsHost, type RpcExceptionFilter } from '@nestjs/common';
import { RpcException } from '@nestjs/microservices';
import { Metadata, status } from '@grpc/grpc-js';
import type { Logger } from '@sotto/platform/logging';
import { Observable, throwError } from 'rxjs';

/** An error the client is meant to see: a gRPC status code and a message that names the problem. */
export function grpcError(code: status, message: string, metadata?: Metadata): RpcException {
  return new RpcException(metadata ? { code, message, metadata } : { code, message });
}

/**
 * A store a call depends on (Redis for rate limits, say) could not be reached
 * or did not answer in time. Not a bug and not the caller's fault: the
 * exception filter answers UNAVAILABLE with this message, so the client tries
 * again later, and logs a warning, not an error with a correlation id.
 */
export class DependencyUnavailableError extends Error {
  constructor(
    /** What is unavailable, as the client reads it: "rate limits". */
    readonly what: string,
    /** Why, for the log and the client: "Redis did not answer within 1000 ms". */
    readonly problem: string,
  ) {
    super(`${what} are unavailable (${problem}); try again`);
    this.name = 'DependencyUnavailableError';
  }
}

/**
 * The gRPC status code an error carries: a deliberate error of ours
 * (grpcError), or one a client call returned. Undefined for anything else.
 */
export function grpcStatusOf(error: unknown): status | undefined {
  const inner = error instanceof RpcException ? error.getError() : error;
  const code = typeof inner === 'object' && inner !== null ? (inner as { code?: unknown }).code : undefined;
  return isStatus(code) ? code : undefined;
}

function isStatus(value: unknown): value is status {
  return typeof value === 'number' && status[value] !== undefined;
}

function isGrpcError(value: unknown): value is ClientError {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { code?: unknown }).code === 'number' &&
    typeof (value as { message?: unknown }).message === 'string'
  );
}

/** What a client is told of a failed call: its status code, message and trailers. */
export interface ClientError {
  readonly code: status;
  readonly message: string;
  readonly metadata?: Metadata;
}

/**
 * What the client is told of an error: a deliberate gRPC error of ours
 * passes through unchanged, and a dependency that is down
 * (DependencyUnavailableError) is UNAVAILABLE. Anything else is a bug: it is
 * logged with a correlation id, and the client gets INTERNAL with that id and
 * nothing else, never a stack trace.
 */
export function clientErrorOf(exception: unknown, logger: Logger, handler?: string): ClientError {
  const error = exception instanceof RpcException ? exception.getError() : exception;
  if (isGrpcError(error)) return error;
  if (exception instanceof DependencyUnavailableError) {
    logger.warn({ what: exception.what, problem: exception.problem }, exception.message);
    return { code: status.UNAVAILABLE, message: exception.message };
  }
  const correlationId = randomUUID();
  logger.error({ correlationId, err: exception, handler }, 'unhandled error in gRPC handler');
  return { code: status.INTERNAL, message: `internal error (correlation id ${correlationId})` };
}

/** clientErrorOf for the handlers NestJS runs. */
@Catch()
export class GrpcExceptionFilter implements RpcExceptionFilter<unknown> {
  constructor(private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): Observable<never> {
    const handler = host.getType() === 'rpc' ? host.switchToRpc().getContext<unknown>() : undefined;
    const error = clientErrorOf(exception, this.logger, handler === undefined ? undefined : typeof handler);
    return throwError(() => error);
  }
}
