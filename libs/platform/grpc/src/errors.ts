import { randomUUID } from 'node:crypto';
import { Catch, type ArgumentsHost, type RpcExceptionFilter } from '@nestjs/common';
import { RpcException } from '@nestjs/microservices';
import { Metadata, status } from '@grpc/grpc-js';
import type { Logger } from '@sotto/platform/logging';
import { Observable, throwError } from 'rxjs';

interface GrpcErrorShape {
  code: status;
  message: string;
  metadata?: Metadata;
}

/** An error the client is meant to see: a gRPC status code and a message that names the problem. */
export function grpcError(code: status, message: string, metadata?: Metadata): RpcException {
  return new RpcException(metadata ? { code, message, metadata } : { code, message });
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

function isGrpcError(value: unknown): value is GrpcErrorShape {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { code?: unknown }).code === 'number' &&
    typeof (value as { message?: unknown }).message === 'string'
  );
}

/**
 * Passes deliberate gRPC errors through unchanged. Anything else is a bug:
 * it is logged with a correlation id, and the client gets INTERNAL with that
 * id and nothing else, never a stack trace.
 */
@Catch()
export class GrpcExceptionFilter implements RpcExceptionFilter<unknown> {
  constructor(private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): Observable<never> {
    const error = exception instanceof RpcException ? exception.getError() : exception;
    if (isGrpcError(error)) return throwError(() => error);

    const correlationId = randomUUID();
    const handler = host.getType() === 'rpc' ? host.switchToRpc().getContext<unknown>() : undefined;
    this.logger.error(
      { correlationId, err: exception, handler: handler === undefined ? undefined : typeof handler },
      'unhandled error in gRPC handler',
    );
    return throwError(() => ({
      code: status.INTERNAL,
      message: `internal error (correlation id ${correlationId})`,
    }));
  }
}
