import { join } from 'node:path';
import { Module, type DynamicModule } from '@nestjs/common';
import { PostgresModule, postgresConnection } from '@sotto/platform/postgres';
import { RateLimitsModule, RedisModule, redisConnection } from '@sotto/platform/redis';
import { AccountsModule } from './accounts/accounts.module';
import { DevicesModule } from './devices/devices.module';
import { DirectoryController } from './directory.controller';
import type { DirectoryEnv } from './env';
import { PreKeysModule } from './prekeys/prekeys.module';

export const MIGRATIONS_DIR = join(__dirname, '..', 'migrations');

@Module({})
export class AppModule {
  static register(env: DirectoryEnv): DynamicModule {
    return {
      module: AppModule,
      imports: [
        PostgresModule.forRoot({
          ...postgresConnection(env),
          schema: 'directory',
          migrationsDir: MIGRATIONS_DIR,
        }),
        RedisModule.forRoot(redisConnection(env)),
        RateLimitsModule.forRoot({ enabled: env.SOTTO_RATE_LIMITS === 'on' }),
        AccountsModule,
        PreKeysModule.register({
          fetchLimit: { fetches: env.PREKEY_FETCH_LIMIT, windowSeconds: env.PREKEY_FETCH_WINDOW_SECONDS },
          oneTimeKeyBudget: env.RATE_LIMIT_ONE_TIME_PREKEYS_PER_DEVICE,
        }),
        DevicesModule.register({
          maxDevices: env.MAX_DEVICES_PER_ACCOUNT,
          linkTokenTtlSeconds: env.LINK_TOKEN_TTL_SECONDS,
        }),
      ],
      controllers: [DirectoryController],
    };
  }
}
