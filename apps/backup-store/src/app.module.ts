import { join } from 'node:path';
import { Module, type DynamicModule } from '@nestjs/common';
import { PostgresModule, postgresConnection } from '@sotto/platform/postgres';
import { BackupController } from './backup.controller';
import { BlobsModule } from './blobs/blobs.module';
import { CleanupModule } from './cleanup/cleanup.module';
import { BACKUP_POLICY, backupPolicy, type BackupEnv } from './env';
import { MetricsModule } from './metrics/metrics.module';
import { UploadsModule } from './uploads/uploads.module';
import { VersionsModule } from './versions/versions.module';

export const MIGRATIONS_DIR = join(__dirname, '..', 'migrations');

@Module({})
export class AppModule {
  static register(env: BackupEnv): DynamicModule {
    return {
      module: AppModule,
      global: true,
      imports: [
        PostgresModule.forRoot({
          ...postgresConnection(env),
          schema: 'backup',
          migrationsDir: MIGRATIONS_DIR,
        }),
        BlobsModule.register(env),
        MetricsModule,
        CleanupModule.register({ sweepIntervalMs: env.BACKUP_SWEEP_INTERVAL_SECONDS * 1000 }),
        VersionsModule,
        UploadsModule,
      ],
      controllers: [BackupController],
      providers: [{ provide: BACKUP_POLICY, useValue: backupPolicy(env) }],
      exports: [BACKUP_POLICY],
    };
  }
}
