import { Global, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { GATEWAY_ENV, type GatewayEnv } from '../env';
import { Authenticator } from './authenticator';
import { CredentialCache } from './credential-cache';
import { CredentialRevocations } from './credential-revocations';
import { DeviceAuthGuard } from './device-auth.guard';
import { AuthFailureLimits, FAILURE_LIMITS, type FailureLimits } from './failure-limits';

/** Every gateway RPC is authenticated unless its handler is @Public(). */
@Global()
@Module({
  providers: [
    Authenticator,
    CredentialRevocations,
    AuthFailureLimits,
    {
      provide: CredentialCache,
      inject: [GATEWAY_ENV],
      useFactory: (env: GatewayEnv) =>
        new CredentialCache({ ttlMs: env.AUTH_CACHE_TTL_MS, maxEntries: env.AUTH_CACHE_MAX_ENTRIES }),
    },
    {
      provide: FAILURE_LIMITS,
      inject: [GATEWAY_ENV],
      useFactory: (env: GatewayEnv): FailureLimits => ({
        perSource: env.AUTH_FAILURES_PER_SOURCE,
        perDevice: env.AUTH_FAILURES_PER_DEVICE,
        windowSeconds: env.AUTH_FAILURE_WINDOW_SECONDS,
      }),
    },
    { provide: APP_GUARD, useClass: DeviceAuthGuard },
  ],
  exports: [Authenticator, CredentialRevocations],
})
export class AuthModule {}
