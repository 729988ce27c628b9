import {
  Injectable,
  SetMetadata,
  type CanActivate,
  type CustomDecorator,
  type ExecutionContext,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Metadata } from '@grpc/grpc-js';
import { Authenticator, type AuthenticatedDevice } from './authenticator';
import { peerOf, whilePaused } from './call';

const PUBLIC = Symbol('sotto:public-rpc');

/** Marks an RPC that needs no device credential (registration, recovery, vault login). */
export const Public = (): CustomDecorator<symbol> => SetMetadata(PUBLIC, true);

/** Whether a handler is marked @Public(). */
export function isPublic(handler: object): boolean {
  return new Reflector().get<boolean | undefined>(PUBLIC, handler as () => unknown) === true;
}

// The device each call's credential proved, keyed by the call's own metadata object.
const callers = new WeakMap<Metadata, AuthenticatedDevice>();

/**
 * The device a call comes from. Only for handlers behind DeviceAuthGuard,
 * which runs before every gateway handler not marked @Public().
 */
export function callerOf(metadata: Metadata): AuthenticatedDevice {
  const caller = callers.get(metadata);
  if (!caller) throw new Error('callerOf: the call was not authenticated (is the handler @Public()?)');
  return caller;
}

/** Authenticates a call not marked @Public(), for callerOf; throws as DeviceAuthGuard describes. */
export async function authenticateCall(auth: Authenticator, metadata: Metadata, peer: string): Promise<void> {
  callers.set(metadata, await auth.authenticate(metadata, peer));
}

/**
 * Authenticates every gateway RPC before its handler runs, unless the
 * handler is @Public(): no credential, or a wrong one, is UNAUTHENTICATED
 * (RESOURCE_EXHAUSTED once its source or device failed too often) and the
 * handler never sees the call. While the credential is checked, a
 * client stream is paused, so what a caller sends before it is authenticated
 * waits in the transport's flow control, not in memory.
 */
@Injectable()
export class DeviceAuthGuard implements CanActivate {
  constructor(
    private readonly auth: Authenticator,
    private readonly reflector: Reflector,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (this.reflector.get<boolean | undefined>(PUBLIC, context.getHandler())) return true;
    const metadata = context.switchToRpc().getContext<Metadata>();
    const call = context.getArgByIndex<unknown>(2);
    await whilePaused(call, () => authenticateCall(this.auth, metadata, peerOf(call)));
    return true;
  }
}
