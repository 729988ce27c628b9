import { mkdtempSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import {
  callerCredentials,
  scrapeMetrics,
  startTestService,
  testInfra,
  type TestService,
} from '@sotto/testing';
import { SYNC_EVERY_BYTES } from './blobs/local-blob-store';
import { BackupTestClient, MIB, refusal, sha256 } from './testing/backup-client';
import { describeBackupStore, type StoredBlobs } from './testing/backup-suite';

const PENDING = '.part';

/** Every file under the blob directory, as blob keys. */
async function blobsIn(dir: string): Promise<StoredBlobs> {
  const files = (await readdir(dir, { recursive: true, withFileTypes: true }))
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)));
  return {
    finished: files.filter((file) => !file.endsWith(PENDING)),
    pending: files.filter((file) => file.endsWith(PENDING)).map((file) => file.slice(0, -PENDING.length)),
  };
}

let blobDir: string | undefined;
const sharedBlobDir = (): string => (blobDir ??= mkdtempSync(join(testInfra().workDir, 'backup-blobs-')));

describeBackupStore('local disk', {
  start: (env) => startTestService('backup-store', { BACKUP_BLOB_DIR: sharedBlobDir(), ...env }),
  blobs: () => blobsIn(sharedBlobDir()),
  checkpointBytes: SYNC_EVERY_BYTES,
  keptUnit: 1,
});

describe('backup-store requests', () => {
  let service: TestService;
  let client: BackupTestClient;

  beforeAll(async () => {
    service = await startTestService('backup-store');
    client = new BackupTestClient(service.grpc, callerCredentials('gateway'));
  });

  afterAll(async () => {
    client?.close();
    await service?.stop();
  });

  const digest = sha256(Buffer.from('backup'));

  it.each([
    [
      'a malformed account id',
      () => client.createUpload("x' OR 1=1 --", 10, digest),
      'account_id: is not an account id',
    ],
    [
      'a size of 0',
      () => client.createUpload(randomUUID(), 0, digest),
      'size: must be a whole number of at least 1',
    ],
    [
      'a digest of 31 bytes',
      () => client.createUpload(randomUUID(), 10, digest.subarray(1)),
      'sha256: must be a SHA-256 digest of 32 bytes, got 31',
    ],
    [
      'a malformed upload id',
      () => client.getUpload(randomUUID(), 'upload-1'),
      'upload_id: is not an upload id',
    ],
    [
      'a malformed upload id in start',
      () => client.openUpload(randomUUID(), '../../etc/passwd', 0).finish(),
      'start.upload_id: is not an upload id',
    ],
    [
      'a malformed account id in start',
      () => client.openUpload('alice', randomUUID(), 0).finish(),
      'start.account_id: is not an account id',
    ],
    [
      'a missing account id in start',
      () => client.openUpload('', randomUUID(), 0).finish(),
      'start.account_id: is required',
    ],
    [
      'a malformed account id in a listing',
      () => client.listBackups('alice'),
      'account_id: is not an account id',
    ],
    [
      'a malformed account id in a download',
      () => client.download('alice'),
      'account_id: is not an account id',
    ],
  ])('refuses %s with INVALID_ARGUMENT naming the field', async (_, call, details) => {
    expect(await refusal(call())).toEqual({ code: status.INVALID_ARGUMENT, details });
  });

  it('refuses an oversized size with RESOURCE_EXHAUSTED, and a size past 2^53 as invalid', async () => {
    const alice = randomUUID();
    expect(await refusal(client.createUpload(alice, 2 * 1024 ** 3 + 1, digest))).toEqual({
      code: status.RESOURCE_EXHAUSTED,
      details: `size: ${2 * 1024 ** 3 + 1} bytes is over the quota of ${2 * 1024 ** 3} bytes`,
    });
    const huge = await refusal(
      new Promise((resolve, reject) =>
        client.raw.createUpload(
          { accountId: alice, size: '18446744073709551615', sha256: digest },
          (error, response) => (error ? reject(error) : resolve(response)),
        ),
      ),
    );
    expect(huge).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'size: must be a whole number of at least 1',
    });
    expect(await client.listBackups(alice)).toMatchObject({ uploads: [], reservedBytes: '0' });
  });

  it('refuses a stream that does not start by naming the upload', async () => {
    const call = new Promise((resolve, reject) => {
      const stream = client.raw.uploadChunks((error, response) =>
        error ? reject(error) : resolve(response),
      );
      stream.write({ chunk: Buffer.from('no start') });
      stream.end();
    });
    expect(await refusal(call)).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'start: the first message must name the upload and the offset',
    });
  });

  it('refuses oversized chunks, chunks past the declared size and a second start, keeping what came before', async () => {
    const alice = randomUUID();
    const data = randomBytes(3 * MIB);
    const { uploadId, maxChunkSize } = await client.createUpload(alice, data.length, sha256(data));
    expect(maxChunkSize).toBe(MIB);

    const oversized = new Promise((resolve, reject) => {
      const stream = client.raw.uploadChunks((error, response) =>
        error ? reject(error) : resolve(response),
      );
      stream.write({ start: { accountId: alice, uploadId, offset: '0' } });
      stream.write({ chunk: data.subarray(0, 1000) });
      stream.write({ chunk: data.subarray(1000, 1000 + MIB + 1) });
      stream.end();
    });
    expect(await refusal(oversized)).toEqual({
      code: status.RESOURCE_EXHAUSTED,
      details: `chunk: ${MIB + 1} bytes is over the maximum chunk size of ${MIB} bytes`,
    });
    expect((await client.getUpload(alice, uploadId)).received).toBe('1000');

    const restart = new Promise((resolve, reject) => {
      const stream = client.raw.uploadChunks((error, response) =>
        error ? reject(error) : resolve(response),
      );
      stream.write({ start: { accountId: alice, uploadId, offset: '1000' } });
      stream.write({ chunk: data.subarray(1000, 2000) });
      stream.write({ start: { accountId: alice, uploadId, offset: '2000' } });
      stream.end();
    });
    expect(await refusal(restart)).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'start: only the first message of a stream may name the upload',
    });
    expect((await client.getUpload(alice, uploadId)).received).toBe('2000');

    const tooLong = client.openUpload(alice, uploadId, 2000);
    await tooLong.send(Buffer.concat([data.subarray(2000), Buffer.from('extra')]));
    expect(await refusal(tooLong.finish())).toEqual({
      code: status.INVALID_ARGUMENT,
      details: `chunk: ends at byte ${data.length + 5}, past the declared size of ${data.length} bytes`,
    });
    const held = Number((await client.getUpload(alice, uploadId)).received);
    expect(await client.upload(alice, uploadId, data, held)).toMatchObject({ complete: true });
    expect(sha256((await client.download(alice)).data).equals(sha256(data))).toBe(true);
  });

  it('counts bytes, completions and quota refusals in its metrics', async () => {
    const alice = randomUUID();
    const data = randomBytes(MIB + 3);
    await client.backup(alice, data);
    await client.download(alice);
    await refusal(client.createUpload(alice, 3 * 1024 ** 3, digest));
    const metrics = await scrapeMetrics(service);
    expect(metrics.get('sotto_backup_uploaded_bytes_total')).toBeGreaterThanOrEqual(data.length);
    expect(metrics.get('sotto_backup_downloaded_bytes_total')).toBeGreaterThanOrEqual(data.length);
    expect(metrics.get('sotto_backup_upload_completions_total{outcome="version"}')).toBeGreaterThanOrEqual(1);
    expect(metrics.get('sotto_backup_quota_refusals_total{reason="bytes"}')).toBeGreaterThanOrEqual(1);
  });
});
