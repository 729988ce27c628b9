import { join } from 'node:path';
import { Module, type DynamicModule } from '@nestjs/common';
import { PostgresModule, postgresConnection } from '@sotto/platform/postgres';
import { RateLimitsModule, RedisModule, redisConnection } from '@sotto/platform/redis';
import { AttemptsModule } from './attempts/attempts.module';
import type { VaultEnv } from './env';
import { LoginModule } from './login/login.module';
import { MetricsModule } from './metrics/metrics.module';
import { RecordsModule } from './records/records.module';
import { TrySpacingModule } from './records/try-spacing.module';
import { RegistrationModule } from './registration/registration.module';
import { ServerSetupModule } from './server-setup/server-setup.module';
import { VaultController } from './vault.controller';

export const MIGRATIONS_DIR = join(__dirname, '..', 'migrations');

@Module({})
export class AppModule {
  static register(env: VaultEnv): DynamicModule {
    return {
      module: AppModule,
      imports: [
        PostgresModule.forRoot({
          ...postgresConnection(env),
          schema: 'vault',
          migrationsDir: MIGRATIONS_DIR,
        }),
        RedisModule.forRoot(redisConnection(env)),
        RateLimitsModule.forRoot({ enabled: env.SOTTO_RATE_LIMITS === 'on' }),
        MetricsModule,
        ServerSetupModule.register({
          modulePath: env.PKCS11_MODULE,
          tokenLabel: env.PKCS11_TOKEN_LABEL,
          pin: env.PKCS11_PIN,
          keyLabel: env.PKCS11_KEY_LABEL,
        }),
        TrySpacingModule.register(env.KEY_VAULT_TRY_DELAYS),
        RecordsModule,
        RegistrationModule,
        LoginModule.register({
          ttlSeconds: env.VAULT_LOGIN_TTL_SECONDS,
          limits: {
            perAccount: env.VAULT_LOGIN_LIMIT_PER_ACCOUNT,
            perSource: env.VAULT_LOGIN_LIMIT_PER_SOURCE,
            windowSeconds: env.VAULT_LOGIN_LIMIT_WINDOW_SECONDS,
          },
        }),
        AttemptsModule.register({ resetsPerDay: env.VAULT_RESET_LIMIT_PER_DAY }),
      ],
      controllers: [VaultController],
    };
  }
}
