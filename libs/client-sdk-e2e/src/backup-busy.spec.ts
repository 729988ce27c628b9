import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import {
  AccountServiceClient,
  BackupServiceClient,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import {
  authorizationMetadata,
  type BusyWait,
  downloadBackupFile,
  generateDeviceKeys,
  publicDeviceKeys,
  unary,
  uploadBackupFile,
} from '@sotto/client-sdk';
import {
  freePort,
  gatewayCredentials,
  metricUntil,
  metricValue,
  startS3Server,
  startTestPlatform,
  testLogDir,
  type S3TestServer,
} from '@sotto/testing';

const MIB = 1024 * 1024;
/** S3's smallest part, so that every upload crosses several parts with little data. */
const PART_BYTES = 5 * MIB;
/** One part's buffer in the store: a part short of a byte, then a last chunk of 1 MiB. */
const PART_BUFFER = PART_BYTES - 1 + MIB;
const QUOTA_BYTES = 32 * MIB;
const BUCKET = 'sotto-backups-busy';

const sha256 = (data: Uint8Array): Buffer => createHash('sha256').update(data).digest();

/**
 * Backups through the gateway to a backup-store on S3 whose upload buffer has
 * room for one part at a time and makes a stream wait for it 1 s at most: the
 * store is busy as soon as two uploads overlap.
 */
describe('backup uploads while the S3 upload buffer is full', () => {
  let s3: S3TestServer;
  let platform: Awaited<ReturnType<typeof startTestPlatform>>;
  const dir = mkdtempSync(join(tmpdir(), 'sotto-busy-'));
  const clients: { close(): void }[] = [];

  beforeAll(async () => {
    const port = await freePort();
    s3 = await startS3Server({ port, logFile: join(testLogDir(), `moto-${port}.log`) });
    const bucket = new S3Client({
      region: 'us-east-1',
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: 'sotto-test', secretAccessKey: 'sotto-test-secret' },
    });
    await bucket.send(new CreateBucketCommand({ Bucket: BUCKET }));
    bucket.destroy();
    platform = await startTestPlatform({
      'backup-store': {
        ...s3.env(BUCKET),
        BACKUP_S3_PART_BYTES: String(PART_BYTES),
        BACKUP_S3_BUFFER_BYTES: String(PART_BUFFER),
        BACKUP_S3_BUFFER_WAIT_SECONDS: '1',
        BACKUP_QUOTA_BYTES: String(QUOTA_BYTES),
      },
    });
  });

  afterAll(async () => {
    for (const client of clients) client.close();
    await platform?.stop();
    await s3?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A freshly registered device's credentials and a backup client through the gateway. */
  async function device(): Promise<{ client: BackupServiceClient; auth: Metadata }> {
    const accounts = new AccountServiceClient(platform.gateway, gatewayCredentials());
    clients.push(accounts);
    const generated = generateDeviceKeys(1);
    const registered = await unary(accounts.register.bind(accounts), {
      username: `b_${randomUUID().replace(/-/g, '').slice(0, 12)}`,
      identityKey: Buffer.from(generated.identity.publicKey.serialize()),
      device: publicDeviceKeys(generated),
    });
    const auth = authorizationMetadata(registered);
    const client = new BackupServiceClient(platform.gateway, gatewayCredentials());
    clients.push(client);
    return { client, auth };
  }

  /** How many waits for buffer room the store ended by refusing the stream. */
  const refusedWaits = () =>
    metricValue(platform.services['backup-store'], 'sotto_backup_s3_buffer_waits_total{outcome="refused"}', {
      absentAs: 0,
    });

  function file(name: string, data: Buffer): string {
    const path = join(dir, name);
    writeFileSync(path, data);
    return path;
  }

  it('completes every one of several racing uploads, resuming each after the store said it was busy, to identical bytes', async () => {
    const refusedBefore = await refusedWaits();
    const uploads = await Promise.all(
      Array.from({ length: 6 }, async (_, index) => ({
        ...(await device()),
        // Two whole parts and a last one of a different size each.
        data: randomBytes(2 * PART_BYTES + 1 + index * 300_007),
        busy: [] as BusyWait[],
      })),
    );

    // Another upload takes the whole buffer first and holds it for longer than the store's wait,
    // so that streams are surely turned away, whatever the speed of the machine; then it lets go.
    const holding = await holdTheBuffer();
    const released = new Promise<void>((resolve) =>
      setTimeout(() => {
        holding.cancel();
        resolve();
      }, 2_500),
    );

    const versions = await Promise.all(
      uploads.map(({ client, auth, data, busy }, index) =>
        uploadBackupFile({
          client,
          metadata: auth,
          path: file(`upload-${index}`, data),
          size: data.length,
          sha256: sha256(data),
          onBusy: (wait) => busy.push(wait),
        }),
      ),
    );

    await released;
    expect(versions.map((version) => version.version)).toEqual(uploads.map(() => '1'));
    // The store did turn streams away, and the uploads it turned away waited (at least the
    // store's retry-after) and came back.
    expect(await refusedWaits()).toBeGreaterThan(refusedBefore);
    const waits = uploads.flatMap(({ busy }) => busy);
    expect(waits.length).toBeGreaterThan(0);
    for (const wait of waits) {
      expect(wait.waitMs).toBeGreaterThanOrEqual(1000);
      expect(wait.message).toMatch(/^the S3 upload buffer \(\d+ bytes shared by all uploads\) stayed full/);
    }
    for (const [index, { client, auth, data }] of uploads.entries()) {
      const copy = join(dir, `restored-${index}`);
      const downloaded = await downloadBackupFile({ client, metadata: auth, path: copy });
      expect(downloaded).toMatchObject({ version: '1', size: String(data.length) });
      expect(readFileSync(copy).equals(data)).toBe(true);
    }
  });

  /** Another upload takes the whole buffer and holds it: it sends a chunk and then nothing. */
  async function holdTheBuffer(): Promise<{ cancel(): void }> {
    const holder = await device();
    const held = randomBytes(2 * PART_BYTES);
    const heldUpload = await unary(
      holder.client.createBackupUpload.bind(holder.client),
      { size: String(held.length), sha256: sha256(held) },
      { metadata: holder.auth },
    );
    const holding = holder.client.uploadBackup(holder.auth, () => undefined);
    holding.write({ start: { uploadId: heldUpload.uploadId, offset: '0' } });
    holding.write({ chunk: held.subarray(0, MIB) });
    // The holder takes the buffer.
    await metricUntil(
      platform.services['backup-store'],
      'sotto_backup_s3_buffer_bytes',
      (bytes) => bytes >= PART_BUFFER,
      { withinMs: 30_000 },
    );
    return holding;
  }

  it('reports the busy store, with its retry-after, once the total wait is spent', async () => {
    const holding = await holdTheBuffer();

    try {
      const alice = await device();
      const data = randomBytes(PART_BYTES + MIB);
      const busy: BusyWait[] = [];
      const refusedBefore = await refusedWaits();
      const refused = await uploadBackupFile({
        client: alice.client,
        metadata: alice.auth,
        path: file('alice', data),
        size: data.length,
        sha256: sha256(data),
        onBusy: (wait) => busy.push(wait),
        busyWaitLimitMs: 4000,
      }).then(
        () => undefined,
        (error: unknown) => error as ServiceError,
      );

      expect(refused?.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(refused?.metadata.get('sotto-refusal')).toEqual(['busy']);
      expect(refused?.metadata.get('retry-after-ms')).toEqual(['1000']);
      expect(busy.length).toBeGreaterThan(0);
      expect(busy.at(-1)?.waitedMs).toBeLessThanOrEqual(4000);
      // Each try waited its turn in the store and was refused: one more than the client's waits.
      expect(await refusedWaits()).toBe(refusedBefore + busy.length + 1);
    } finally {
      holding.cancel();
    }
  });

  it('reports a refusal that waiting cannot cure, the account quota, at once', async () => {
    const { client, auth } = await device();
    const data = randomBytes(QUOTA_BYTES + 1);
    const busy: BusyWait[] = [];
    const refused = await uploadBackupFile({
      client,
      metadata: auth,
      path: file('over-quota', data),
      size: data.length,
      sha256: sha256(data),
      onBusy: (wait) => busy.push(wait),
    }).then(
      () => undefined,
      (error: unknown) => error as ServiceError,
    );
    expect(refused?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(refused?.details).toBe(`size: ${data.length} bytes is over the quota of ${QUOTA_BYTES} bytes`);
    expect(refused?.metadata.get('sotto-refusal')).toEqual(['quota']);
    expect(busy).toEqual([]);
    const { versions } = await unary(client.getBackupStatus.bind(client), {}, { metadata: auth });
    expect(versions).toEqual([]);
  });
});
