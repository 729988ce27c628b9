import type { CallHandler, ExecutionContext, NestInterceptor } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import { Counter, Histogram, type Registry } from 'prom-client';
import { Observable, tap } from 'rxjs';
import { grpcStatusOf } from './errors';

function codeName(error: unknown): string {
  const code = grpcStatusOf(error);
  return code === undefined ? 'INTERNAL' : status[code];
}

/** Counts and times every gRPC call by method and status, as Prometheus's gRPC conventions name them. */
export class GrpcMetricsInterceptor implements NestInterceptor {
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

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const method = `${context.getClass().name}.${context.getHandler().name}`;
    const stop = this.seconds.startTimer({ grpc_method: method });
    return next.handle().pipe(
      tap({
        complete: () => {
          stop();
          this.handled.inc({ grpc_method: method, grpc_code: 'OK' });
        },
        error: (error: unknown) => {
          stop();
          this.handled.inc({ grpc_method: method, grpc_code: codeName(error) });
        },
      }),
    );
  }
}
