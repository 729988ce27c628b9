import { join } from 'node:path';
import { Module, type DynamicModule } from '@nestjs/common';
import { PostgresModule } from '@sotto/platform/postgres';
import { LocalBlobDirModule } from './blobs/local-blob-dir';
import type { BackupEnv } from './env';

export const MIGRATIONS_DIR = join(__dirname, '..', 'migrations');

@Module({})
export class AppModule {
  static register(env: BackupEnv): DynamicModule {
    return {
      module: AppModule,
      imports: [
        PostgresModule.forRoot({ url: env.DATABASE_URL, schema: 'backup', migrationsDir: MIGRATIONS_DIR }),
        LocalBlobDirModule.register(env.BACKUP_BLOB_DIR),
      ],
    };
  }
}
