import { join } from 'node:path';
import { Module, type DynamicModule } from '@nestjs/common';
import { PostgresModule } from '@sotto/platform/postgres';
import { RedisModule } from '@sotto/platform/redis';
import type { DirectoryEnv } from './env';

export const MIGRATIONS_DIR = join(__dirname, '..', 'migrations');

@Module({})
export class AppModule {
  static register(env: DirectoryEnv): DynamicModule {
    return {
      module: AppModule,
      imports: [
        PostgresModule.forRoot({ url: env.DATABASE_URL, schema: 'directory', migrationsDir: MIGRATIONS_DIR }),
        RedisModule.forRoot({ url: env.REDIS_URL }),
      ],
    };
  }
}
