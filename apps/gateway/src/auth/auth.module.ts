import { Global, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { Authenticator } from './authenticator';
import { DeviceAuthGuard } from './device-auth.guard';

/** Every gateway RPC is authenticated unless its handler is @Public(). */
@Global()
@Module({
  providers: [Authenticator, { provide: APP_GUARD, useClass: DeviceAuthGuard }],
  exports: [Authenticator],
})
export class AuthModule {}
