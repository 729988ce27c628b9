import { z } from 'zod';
import { positiveInt, url } from '@sotto/platform/config';
import { serviceEnvSchema } from '@sotto/platform/grpc';

export const backupEnv = serviceEnvSchema(
  { grpc: '127.0.0.1:7404', metrics: '127.0.0.1:9404' },
  {
    DATABASE_URL: url(['postgres', 'postgresql']),
    /** Where blobs are kept when no S3-compatible bucket is configured. */
    BACKUP_BLOB_DIR: z.string().min(1, { message: 'expected a directory path' }),
    /** Per-account quota in bytes (default 2 GiB). */
    BACKUP_QUOTA_BYTES: positiveInt().default(2 * 1024 ** 3),
    /** Completed versions kept per account. */
    BACKUP_VERSIONS_KEPT: positiveInt().default(2),
  },
);
export type BackupEnv = z.output<typeof backupEnv>;
