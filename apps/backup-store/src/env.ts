import { z } from 'zod';
import { positiveInt, url } from '@sotto/platform/config';
import { serviceEnvSchema } from '@sotto/platform/grpc';
import { postgresEnv } from '@sotto/platform/postgres';
import { partBufferBytes } from './blobs/s3-blob-store';

const MIB = 1024 ** 2;
/** S3 refuses parts under 5 MiB, except the last. */
const S3_MIN_PART_BYTES = 5 * MIB;
/** S3 numbers parts 1 to 10,000. */
const S3_MAX_PARTS = 10_000;

/** The largest chunk an UploadChunks message may carry, and so the most one write adds to a part. */
export const MAX_CHUNK_BYTES = MIB;
/** The most one S3 part's buffer holds. */
export const s3PartBufferBytes = (partBytes: number): number => partBufferBytes(partBytes, MAX_CHUNK_BYTES);
/** A day: longer than any client waits on a stream. */
const MAX_BUFFER_WAIT_SECONDS = 24 * 3600;

const yesNo = () =>
  z.enum(['true', 'false'], { message: 'expected true or false' }).transform((value) => value === 'true');

export const backupEnv = serviceEnvSchema(
  { grpc: '127.0.0.1:7404', metrics: '127.0.0.1:9404' },
  {
    /** Where blobs are kept when no S3-compatible bucket is configured. */
    BACKUP_BLOB_DIR: z.string().min(1, { message: 'expected a directory path' }).optional(),
    /** Per-account quota in bytes (default 2 GiB). */
    BACKUP_QUOTA_BYTES: positiveInt().default(2 * 1024 ** 3),
    /** Completed versions kept per account, as long as they fit in the quota together. */
    BACKUP_VERSIONS_KEPT: positiveInt().default(2),
    /** An upload that receives nothing for this long is deleted with its bytes (default 7 days). */
    BACKUP_UPLOAD_EXPIRY_SECONDS: positiveInt().default(7 * 24 * 3600),
    /** How often expired uploads and doomed blobs are cleaned up. */
    BACKUP_SWEEP_INTERVAL_SECONDS: positiveInt().default(300),
    /** Set to keep blobs in this S3-compatible bucket instead of BACKUP_BLOB_DIR. */
    BACKUP_S3_BUCKET: z.string().min(3, { message: 'expected a bucket name' }).optional(),
    /** The S3-compatible server; unset means AWS S3 itself. */
    BACKUP_S3_ENDPOINT: url(['http', 'https']).optional(),
    BACKUP_S3_REGION: z.string().min(1).default('us-east-1'),
    /** Static credentials; unset means the AWS SDK's default chain (e.g. a Kubernetes service account). */
    BACKUP_S3_ACCESS_KEY_ID: z.string().min(1).optional(),
    BACKUP_S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
    /** Path-style URLs (endpoint/bucket/key), which most self-hosted S3-compatible servers need. */
    BACKUP_S3_FORCE_PATH_STYLE: yesNo().default(false),
    /**
     * Bytes buffered per multipart part. An upload resumes from a part boundary,
     * so this is also the most a cut upload re-sends.
     */
    BACKUP_S3_PART_BYTES: positiveInt()
      .min(S3_MIN_PART_BYTES, {
        message: `expected at least ${S3_MIN_PART_BYTES} (5 MiB, S3's minimum part)`,
      })
      .default(8 * MIB),
    /**
     * Bytes all S3 uploads of the process may buffer together (default 256
     * MiB). A stream reserves a part's buffer (BACKUP_S3_PART_BYTES plus one
     * chunk) before buffering it, and waits while the budget is used up.
     */
    BACKUP_S3_BUFFER_BYTES: positiveInt().default(256 * MIB),
    /**
     * How long a stream waits for room in BACKUP_S3_BUFFER_BYTES before it is
     * refused with RESOURCE_EXHAUSTED (default 30 s).
     */
    BACKUP_S3_BUFFER_WAIT_SECONDS: positiveInt()
      .max(MAX_BUFFER_WAIT_SECONDS, { message: `expected at most ${MAX_BUFFER_WAIT_SECONDS} (a day)` })
      .default(30),
  },
)
  .and(postgresEnv)
  .superRefine((env, context) => {
    const problem = (variable: string, message: string): void =>
      context.addIssue({ code: 'custom', path: [variable], message });
    if (env.BACKUP_S3_BUCKET === undefined) {
      if (env.BACKUP_BLOB_DIR === undefined) problem('BACKUP_BLOB_DIR', 'is required');
      for (const variable of [
        'BACKUP_S3_ENDPOINT',
        'BACKUP_S3_ACCESS_KEY_ID',
        'BACKUP_S3_SECRET_ACCESS_KEY',
      ] as const) {
        if (env[variable] !== undefined) problem('BACKUP_S3_BUCKET', `is required when ${variable} is set`);
      }
      return;
    }
    if ((env.BACKUP_S3_ACCESS_KEY_ID === undefined) !== (env.BACKUP_S3_SECRET_ACCESS_KEY === undefined)) {
      const missing =
        env.BACKUP_S3_ACCESS_KEY_ID === undefined ? 'BACKUP_S3_ACCESS_KEY_ID' : 'BACKUP_S3_SECRET_ACCESS_KEY';
      problem(
        missing,
        'is required: set both BACKUP_S3_ACCESS_KEY_ID and BACKUP_S3_SECRET_ACCESS_KEY, or neither',
      );
    }
    const partBuffer = s3PartBufferBytes(env.BACKUP_S3_PART_BYTES);
    if (env.BACKUP_S3_BUFFER_BYTES < partBuffer) {
      problem(
        'BACKUP_S3_BUFFER_BYTES',
        `must hold at least one part's buffer (BACKUP_S3_PART_BYTES + 1 MiB chunk - 1): expected at least ${partBuffer}`,
      );
    }
    if (env.BACKUP_QUOTA_BYTES > env.BACKUP_S3_PART_BYTES * S3_MAX_PARTS) {
      problem(
        'BACKUP_S3_PART_BYTES',
        `a blob of BACKUP_QUOTA_BYTES must fit in ${S3_MAX_PARTS} parts: expected at least ${Math.ceil(env.BACKUP_QUOTA_BYTES / S3_MAX_PARTS)}`,
      );
    }
  });
export type BackupEnv = z.output<typeof backupEnv>;

/** Where blobs go: an S3-compatible bucket when BACKUP_S3_BUCKET is set, else the local directory. */
export type BlobLocation = { readonly kind: 'local'; readonly dir: string } | S3Location;

export interface S3Location {
  readonly kind: 's3';
  readonly bucket: string;
  readonly endpoint: string | undefined;
  readonly region: string;
  readonly credentials: { accessKeyId: string; secretAccessKey: string } | undefined;
  readonly forcePathStyle: boolean;
  readonly partBytes: number;
  /** Bytes all uploads may buffer together, and how long a stream waits for room. */
  readonly bufferBytes: number;
  readonly bufferWaitMs: number;
}

export function blobLocation(env: BackupEnv): BlobLocation {
  if (env.BACKUP_S3_BUCKET === undefined) {
    // The schema refuses an environment with neither.
    if (env.BACKUP_BLOB_DIR === undefined) throw new Error('BACKUP_BLOB_DIR is required');
    return { kind: 'local', dir: env.BACKUP_BLOB_DIR };
  }
  const { BACKUP_S3_ACCESS_KEY_ID: accessKeyId, BACKUP_S3_SECRET_ACCESS_KEY: secretAccessKey } = env;
  return {
    kind: 's3',
    bucket: env.BACKUP_S3_BUCKET,
    endpoint: env.BACKUP_S3_ENDPOINT,
    region: env.BACKUP_S3_REGION,
    credentials:
      accessKeyId !== undefined && secretAccessKey !== undefined
        ? { accessKeyId, secretAccessKey }
        : undefined,
    forcePathStyle: env.BACKUP_S3_FORCE_PATH_STYLE,
    partBytes: env.BACKUP_S3_PART_BYTES,
    bufferBytes: env.BACKUP_S3_BUFFER_BYTES,
    bufferWaitMs: env.BACKUP_S3_BUFFER_WAIT_SECONDS * 1000,
  };
}

/** The policy every feature reads: quota, versions and upload expiry. */
export interface BackupPolicy {
  readonly quotaBytes: number;
  readonly versionsKept: number;
  readonly uploadExpirySeconds: number;
}

export const BACKUP_POLICY = Symbol('BACKUP_POLICY');

export function backupPolicy(env: BackupEnv): BackupPolicy {
  return {
    quotaBytes: env.BACKUP_QUOTA_BYTES,
    versionsKept: env.BACKUP_VERSIONS_KEPT,
    uploadExpirySeconds: env.BACKUP_UPLOAD_EXPIRY_SECONDS,
  };
}
