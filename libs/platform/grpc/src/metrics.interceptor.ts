import type { CallHandler, ExecutionContext, NestInterceptor } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import { Counter, Histogram, type Registry } from 'prom-client';
import { Observable, tap } from 'rxjs';
import { grpcStatusOf } from './errors';

/** The status label of a call that failed with `error`, as the handler threw it. */
export function codeName(error: unknown): string {
  const code = grpcStatusOf(error);
  return code === undefined ? 'INTERNAL' : status[code];
}

/**
 * Counts and times gRPC calls by method ("<Controller>.<method>") and status,
 * as Prometheus's gRPC conventions name them. One per server: the calls
 * NestJS runs (GrpcMetricsInterceptor) and the direct ones (serveDirectMethods)
 * share it.
 */
export class GrpcServerMetrics {
  private readonly handled: Counter<'grpc_method' | 'grpc_code'>;
  private readonly seconds: Histogram<'grpc_method'>;

  constructor(registry: Registry) {
    this.handled = new Counter({
      name: 'sotto_grpc_server_handled_total',
      help: 'gRPC calls completed, by method and status code.',
      labelNames: ['grpc_method', 'grpc_code'],
      registers: [registry],
    });
    this.seconds = new Histogram({
      name: 'sotto_grpc_server_handling_seconds',
      help: 'Time from a gRPC call arriving to its answer (or the end of its stream).',
      labelNames: ['grpc_method'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
  }

  /** Starts timing a call of `method`; the function returned records how it ended. */
  start(method: string): (code: string) => void {
    const started = process.hrtime.bigint();
    return (code) => {
      this.seconds.observe({ grpc_method: method }, Number(process.hrtime.bigint() - started) / 1e9);
      this.handled.inc({ grpc_method: method, grpc_code: code });
    };
  }
}

/** GrpcServerMetrics for the calls NestJS runs: after the guards and the interceptors registered before it. */
export class GrpcMetricsInterceptor implements NestInterceptor {
  constructor(private readonly metrics: GrpcServerMetrics) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const ended = this.metrics.start(`${context.getClass().name}.${context.getHandler().name}`);
    return next.handle().pipe(
      tap({
        complete: () => ended('OK'),
        error: (error: unknown) => ended(codeName(error)),
      }),
    );
  }
}
