import { Global, Module, type DynamicModule } from '@nestjs/common';
import { RateLimitsModule, RedisModule, redisConnection } from '@sotto/platform/redis';
import { AccountsController } from './accounts/accounts.controller';
import { AuthModule } from './auth/auth.module';
import { SignOuts } from './auth/sign-outs';
import { BackupsController } from './backups/backups.controller';
import { DevicesController } from './devices/devices.controller';
import { LinkWaits } from './devices/link-waits';
import { GATEWAY_ENV, type GatewayEnv } from './env';
import { HeapTrim } from './heap-trim';
import { KeysController } from './keys/keys.controller';
import { LimitsModule } from './limits/limits.module';
import { MessagingModule } from './messaging/messaging.module';
import { SenderCertificateIssuer } from './sender-certificates/sender-certificate-issuer';
import { UnidentifiedAccess } from './unidentified-access/unidentified-access';
import { RelayCalls } from './upstream/relay-calls';
import { Upstream } from './upstream/upstream';
import { VaultController } from './vault/vault.controller';
import { VaultReports } from './vault/vault-reports';

@Global()
@Module({})
export class AppModule {
  static register(env: GatewayEnv): DynamicModule {
    return {
      module: AppModule,
      imports: [
        RedisModule.forRoot(redisConnection(env)),
        RateLimitsModule.forRoot({ enabled: env.SOTTO_RATE_LIMITS === 'on' }),
        AuthModule,
        LimitsModule,
        MessagingModule,
      ],
      controllers: [
        AccountsController,
        KeysController,
        BackupsController,
        VaultController,
        DevicesController,
      ],
      providers: [
        { provide: GATEWAY_ENV, useValue: env },
        HeapTrim,
        Upstream,
        RelayCalls,
        VaultReports,
        SenderCertificateIssuer,
        SignOuts,
        LinkWaits,
        UnidentifiedAccess,
      ],
      exports: [GATEWAY_ENV, Upstream, RelayCalls, VaultReports, UnidentifiedAccess],
    };
  }
}
