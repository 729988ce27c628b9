import { Inject, Logger, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import type { S3Client } from '@aws-sdk/client-s3';
import { Readiness } from '@sotto/platform/health';
import { MAX_CHUNK_BYTES, blobLocation, type BackupEnv } from '../env';
import { BackupMetrics } from '../metrics/backup-metrics';
import { BufferBudget } from './buffer-budget';
import { BLOB_STORE, type BlobStore } from './blob-store';
import { LocalBlobStore } from './local-blob-store';
import { S3BlobStore, createS3Client } from './s3-blob-store';

const S3_CLIENT = Symbol('S3_CLIENT');

class S3ClientLifecycle implements OnApplicationShutdown {
  constructor(@Inject(S3_CLIENT) private readonly s3: S3Client | null) {}

  onApplicationShutdown(): void {
    this.s3?.destroy();
  }
}

/**
 * The blob store: an S3-compatible bucket when BACKUP_S3_BUCKET is set,
 * otherwise the local BACKUP_BLOB_DIR. Readiness checks that it answers.
 */
@Module({})
export class BlobsModule {
  static register(env: BackupEnv): DynamicModule {
    const location = blobLocation(env);
    return {
      module: BlobsModule,
      global: true,
      providers: [
        { provide: S3_CLIENT, useFactory: () => (location.kind === 's3' ? createS3Client(location) : null) },
        {
          provide: BLOB_STORE,
          inject: [Readiness, S3_CLIENT, BackupMetrics],
          useFactory: async (
            readiness: Readiness,
            client: S3Client | null,
            metrics: BackupMetrics,
          ): Promise<BlobStore> => {
            let store: BlobStore;
            if (location.kind === 's3' && client) {
              const budget = new BufferBudget(
                'S3 upload buffer',
                location.bufferBytes,
                location.bufferWaitMs,
                metrics.s3Buffer(location.bufferBytes),
              );
              store = new S3BlobStore(client, location.bucket, location.partBytes, budget, MAX_CHUNK_BYTES);
            } else if (location.kind === 'local') {
              const local = new LocalBlobStore(location.dir);
              await local.prepare();
              store = local;
            } else {
              throw new Error('no S3 client for the S3 blob store');
            }
            readiness.register('blob-store', () => store.check());
            new Logger('BlobStore').log(
              location.kind === 's3'
                ? `blobs in S3 bucket ${location.bucket}; parts of ${location.partBytes} bytes buffered within ${location.bufferBytes} bytes across uploads`
                : 'blobs in the local directory',
            );
            return store;
          },
        },
        S3ClientLifecycle,
      ],
      exports: [BLOB_STORE],
    };
  }
}
