import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import {
  callerCredentials,
  freePort,
  metricsUntil,
  scrapeMetrics,
  startS3Server,
  startTestService,
  testLogDir,
  type S3TestServer,
  type TestService,
} from '@sotto/testing';
import { BackupTestClient, MIB, refusal, sha256, type OpenUpload } from './testing/backup-client';
import { BUSY_RETRY_AFTER_MS } from './uploads/uploads.service';

/** S3's smallest part. */
const PART_BYTES = 5 * MIB;
/** The most one part's buffer holds: a part short of a byte, then a last chunk of 1 MiB. */
const PART_BUFFER = PART_BYTES - 1 + MIB;
const BUCKET = 'sotto-backups-buffered';

let server: S3TestServer;

/** A backup-store on the bucket whose S3 upload buffer budget is `parts` part buffers. */
async function startStore(parts: number, waitSeconds: number): Promise<TestService> {
  return startTestService('backup-store', {
    ...server.env(BUCKET),
    BACKUP_BLOB_DIR: undefined,
    BACKUP_S3_PART_BYTES: String(PART_BYTES),
    BACKUP_S3_BUFFER_BYTES: String(parts * PART_BUFFER),
    BACKUP_S3_BUFFER_WAIT_SECONDS: String(waitSeconds),
  });
}

/** The store's S3 buffer series. */
const BUFFERED = 'sotto_backup_s3_buffer_bytes';
const WAITING = 'sotto_backup_s3_buffer_waiting_streams';
const WAITS = 'sotto_backup_s3_buffer_waits_total';

/** The store's S3 buffer metrics, read from its /metrics. */
async function bufferMetrics(service: TestService): Promise<{
  buffered: number;
  waiting: number;
  peak: number;
  capacity: number;
  waits: Record<'granted' | 'refused' | 'cancelled', number>;
}> {
  const samples = await scrapeMetrics(service);
  const value = (series: string): number => samples.get(series) ?? 0;
  const waits = (outcome: string): number => value(`${WAITS}{outcome="${outcome}"}`);
  return {
    buffered: value(BUFFERED),
    waiting: value(WAITING),
    peak: value('sotto_backup_s3_buffer_peak_bytes'),
    capacity: value('sotto_backup_s3_buffer_capacity_bytes'),
    waits: { granted: waits('granted'), refused: waits('refused'), cancelled: waits('cancelled') },
  };
}

/** Resolves once `check` holds; for a state the store reaches on its own. */
async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

beforeAll(async () => {
  const port = await freePort();
  server = await startS3Server({ port, logFile: join(testLogDir(), `moto-${port}.log`) });
  const s3 = new S3Client({
    region: 'us-east-1',
    endpoint: server.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: 'sotto-test', secretAccessKey: 'sotto-test-secret' },
  });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  s3.destroy();
});

afterAll(async () => {
  await server?.stop();
});

describe('the S3 upload buffer budget, with room for two parts and a long wait', () => {
  let service: TestService;
  let client: BackupTestClient;

  beforeAll(async () => {
    service = await startStore(2, 60);
    client = new BackupTestClient(service.grpc, callerCredentials('gateway'));
  });

  afterAll(async () => {
    client?.close();
    await service?.stop();
  });

  it('lets many concurrent uploads wait their turn, never buffering more than the budget, and completes them all', async () => {
    const uploads = Array.from({ length: 8 }, (_, index) => ({
      account: randomUUID(),
      // Two whole parts and a last one of a different size each.
      data: randomBytes(2 * PART_BYTES + 1 + index * 300_007),
    }));
    const before = await bufferMetrics(service);
    expect(before.capacity).toBe(2 * PART_BUFFER);

    const done = await Promise.all(uploads.map(({ account, data }) => client.backup(account, data)));
    expect(done.map((upload) => upload.version)).toEqual(uploads.map(() => '1'));
    for (const { account, data } of uploads) {
      const { backup, data: stored } = await client.download(account);
      expect(sha256(stored).equals(sha256(data))).toBe(true);
      expect(Buffer.from(backup?.sha256 ?? []).equals(sha256(data))).toBe(true);
    }

    const after = await bufferMetrics(service);
    // Two streams buffered at once, and never more than the budget.
    expect(after.peak).toBeGreaterThan(PART_BUFFER);
    expect(after.peak).toBeLessThanOrEqual(2 * PART_BUFFER);
    // Eight streams, room for two: some waited, and all got room.
    expect(after.waits.granted).toBeGreaterThan(before.waits.granted);
    expect(after.waits.refused).toBe(before.waits.refused);
    expect(after.buffered).toBe(0);
  });

  it('ends the wait of a stream taken over by a newer one at once, and frees every reservation of cancelled streams', async () => {
    // Two streams that sent less than a part and then nothing hold the whole budget.
    const holders: OpenUpload[] = [];
    for (let index = 0; index < 2; index += 1) {
      const data = randomBytes(3 * PART_BYTES);
      const account = randomUUID();
      const { uploadId } = await client.createUpload(account, data.length, sha256(data));
      const holder = client.openUpload(account, uploadId, 0);
      await holder.send(data.subarray(0, MIB));
      holders.push(holder);
    }
    await metricsUntil(
      service,
      'the holders reserved the whole budget',
      (samples) => samples.get(BUFFERED) === 2 * PART_BUFFER,
      30_000,
    );
    const before = await bufferMetrics(service);

    const alice = randomUUID();
    const data = randomBytes(PART_BYTES + 3 * MIB);
    const { uploadId } = await client.createUpload(alice, data.length, sha256(data));
    const older = client.openUpload(alice, uploadId, 0);
    await older.send(data.subarray(0, MIB));
    await metricsUntil(
      service,
      'the older stream waits for room',
      (samples) => samples.get(WAITING) === 1,
      30_000,
    );
    // A newer stream of the upload takes over.
    const newer = client.openUpload(alice, uploadId, 0);
    const newerSent = newer.send(data);
    const started = Date.now();
    expect(await refusal(older.response)).toEqual({
      code: status.ABORTED,
      details: 'upload_id: a newer stream took this upload over (or it was cancelled); this stream stopped',
    });
    // Well before the 60 s wait ran out.
    expect(Date.now() - started).toBeLessThan(20_000);
    await metricsUntil(
      service,
      'the older stream stopped waiting',
      (samples) => samples.get(`${WAITS}{outcome="cancelled"}`) === before.waits.cancelled + 1,
      30_000,
    );

    // A holder goes away: its part's room goes to the newer stream, which completes.
    holders[0].cancel();
    await newerSent;
    expect(await newer.finish()).toMatchObject({ received: String(data.length), complete: true });
    expect(sha256((await client.download(alice)).data).equals(sha256(data))).toBe(true);

    holders[1].cancel();
    await metricsUntil(
      service,
      'every reservation is released',
      (samples) => samples.get(BUFFERED) === 0,
      30_000,
    );
    const after = await bufferMetrics(service);
    expect(after.peak).toBeLessThanOrEqual(2 * PART_BUFFER);
    expect(after.waits.refused).toBe(before.waits.refused);
  });
});

describe('the S3 upload buffer budget, with room for one part and a 2 s wait', () => {
  let service: TestService;
  let client: BackupTestClient;

  beforeAll(async () => {
    service = await startStore(1, 2);
    client = new BackupTestClient(service.grpc, callerCredentials('gateway'));
  });

  afterAll(async () => {
    client?.close();
    await service?.stop();
  });

  it('refuses a stream that gets no room in time with RESOURCE_EXHAUSTED, keeping what it stored for a resume', async () => {
    const alice = randomUUID();
    const data = randomBytes(2 * PART_BYTES + 2 * MIB);
    const { uploadId } = await client.createUpload(alice, data.length, sha256(data));
    // A first part goes in while there is room.
    const stream = client.openUpload(alice, uploadId, 0);
    await stream.send(data.subarray(0, PART_BYTES));
    await eventually(
      async () => Number((await client.getUpload(alice, uploadId)).received) === PART_BYTES,
      'the first part is stored',
    );

    // Another upload takes the whole budget and holds it.
    const bob = randomUUID();
    const other = randomBytes(3 * PART_BYTES);
    const { uploadId: otherId } = await client.createUpload(bob, other.length, sha256(other));
    const holder = client.openUpload(bob, otherId, 0);
    await holder.send(other.subarray(0, MIB));
    await metricsUntil(
      service,
      'the holder reserved the whole budget',
      (samples) => samples.get(BUFFERED) === PART_BUFFER,
      30_000,
    );
    const before = await bufferMetrics(service);

    // The next chunk of the first stream finds no room within the wait; meanwhile it reads nothing more.
    void stream.send(data.subarray(PART_BYTES, data.length));
    await metricsUntil(service, 'the stream waits for room', (samples) => samples.get(WAITING) === 1, 30_000);
    const refused = await stream.response.then(
      () => undefined,
      (error: unknown) => error as ServiceError,
    );
    expect(refused?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(refused?.details).toBe(
      `the S3 upload buffer (${PART_BUFFER} bytes shared by all uploads) stayed full for 2000 ms; ` +
        `the store holds ${PART_BYTES} bytes of this upload, nothing is lost: resume from offset ${PART_BYTES} later`,
    );
    const trailers = refused?.metadata ?? new Metadata();
    expect(trailers.get('sotto-refusal')).toEqual(['busy']);
    expect(trailers.get('retry-after-ms')).toEqual([String(BUSY_RETRY_AFTER_MS)]);
    expect(await bufferMetrics(service)).toMatchObject({
      waiting: 0,
      waits: { ...before.waits, refused: before.waits.refused + 1 },
    });
    expect(await client.getUpload(alice, uploadId)).toMatchObject({
      received: String(PART_BYTES),
      complete: false,
    });

    // Once the holder is gone, the upload resumes from what was stored and completes intact.
    holder.cancel();
    await metricsUntil(service, 'the holder let go', (samples) => samples.get(BUFFERED) === 0, 30_000);
    const resumed = await client.upload(alice, uploadId, data, PART_BYTES);
    expect(resumed).toMatchObject({
      received: String(data.length),
      complete: true,
      version: { version: '1' },
    });
    expect(sha256((await client.download(alice)).data).equals(sha256(data))).toBe(true);
    expect((await bufferMetrics(service)).peak).toBeLessThanOrEqual(PART_BUFFER);
  });
});
