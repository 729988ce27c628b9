import { join } from 'node:path';
import {
  CreateBucketCommand,
  ListMultipartUploadsCommand,
  S3Client,
  paginateListObjectsV2,
} from '@aws-sdk/client-s3';
import { freePort, startS3Server, startTestService, testLogDir, type S3TestServer } from '@sotto/testing';
import { MIB } from './testing/backup-client';
import { describeBackupStore, type StoredBlobs } from './testing/backup-suite';

const BUCKET = 'sotto-backups';
/** S3's smallest part, so that the tests cross several parts with little data. */
const PART_BYTES = 5 * MIB;

let server: S3TestServer;
let s3: S3Client;

beforeAll(async () => {
  const port = await freePort();
  server = await startS3Server({ port, logFile: join(testLogDir(), `moto-${port}.log`) });
  s3 = new S3Client({
    region: 'us-east-1',
    endpoint: server.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: 'sotto-test', secretAccessKey: 'sotto-test-secret' },
  });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
});

afterAll(async () => {
  s3?.destroy();
  await server?.stop();
});

/** Objects in the bucket, and multipart uploads not yet completed. */
async function blobsInBucket(): Promise<StoredBlobs> {
  const finished: string[] = [];
  for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: BUCKET })) {
    finished.push(...(page.Contents ?? []).flatMap((object) => (object.Key ? [object.Key] : [])));
  }
  // A handful at most in these tests: one page.
  const { Uploads } = await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
  const pending = (Uploads ?? []).flatMap((upload) => (upload.Key ? [upload.Key] : []));
  return { finished, pending };
}

describeBackupStore('an S3-compatible server', {
  start: (env) =>
    startTestService('backup-store', {
      ...server.env(BUCKET),
      BACKUP_BLOB_DIR: undefined,
      BACKUP_S3_PART_BYTES: String(PART_BYTES),
      ...env,
    }),
  blobs: blobsInBucket,
  checkpointBytes: PART_BYTES,
  keptUnit: PART_BYTES,
});
