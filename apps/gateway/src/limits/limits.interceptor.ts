import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import type { Metadata } from '@grpc/grpc-js';
import { from, switchMap, type Observable } from 'rxjs';
import { pathOf, peerOf, whilePaused } from '../auth/call';
import { CallLimits } from './call-limits';

/**
 * Applies the call limits to every gateway call before its handler runs,
 * after DeviceAuthGuard (interceptors run after guards), so per-device and
 * per-account limits count only authenticated callers. A client stream is
 * paused meanwhile, as the guard does.
 */
@Injectable()
export class CallLimitsInterceptor implements NestInterceptor {
  constructor(private readonly limits: CallLimits) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const rpc = context.switchToRpc();
    const call = context.getArgByIndex<unknown>(2);
    const admitted = whilePaused(call, () =>
      this.limits.admit({
        path: pathOf(call),
        peer: peerOf(call),
        metadata: rpc.getContext<Metadata>(),
        request: rpc.getData<unknown>(),
      }),
    );
    return from(admitted).pipe(switchMap(() => next.handle()));
  }
}
