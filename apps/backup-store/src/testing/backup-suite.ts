import { randomBytes, randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { callerCredentials, startTcpProxy } from '@sotto/testing';
import { BackupTestClient, MIB, refusal, sha256 } from './backup-client';

export interface RunningStore {
  readonly grpc: string;
  readonly metrics: string;
  stop(): Promise<unknown>;
}

/** What a blob store holds, read straight from the disk or the bucket. */
export interface StoredBlobs {
  /** Keys of whole blobs (versions, or uploads whose last byte is in). */
  readonly finished: string[];
  /** Keys of blobs still being written. */
  readonly pending: string[];
}

export interface StoreUnderTest {
  /** Starts a backup-store on this blob store; `env` adds or overrides variables. */
  start(env?: Record<string, string>): Promise<RunningStore>;
  blobs(): Promise<StoredBlobs>;
  /** How many bytes the store makes durable at a time while a stream runs (fsync interval, part size). */
  readonly checkpointBytes: number;
  /**
   * What an ended stream keeps is a multiple of this: S3 keeps whole parts
   * only; local disk syncs every byte written (1).
   */
  readonly keptUnit: number;
}

const account = (): string => randomUUID();
const keyOf = (accountId: string, uploadId: string): string => `${accountId}/${uploadId}`;

/** Resolves once `check` holds; for a state change the store makes on its own. */
async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * The backup store's behaviour through real gRPC, against one blob store.
 * Run for the local directory and for an S3-compatible server alike.
 */
export function describeBackupStore(name: string, store: StoreUnderTest): void {
  describe(`backup-store on ${name}`, () => {
    let service: RunningStore;
    let client: BackupTestClient;

    beforeAll(async () => {
      service = await store.start();
      client = new BackupTestClient(service.grpc, callerCredentials('gateway'));
    });

    afterAll(async () => {
      client?.close();
      await service?.stop();
    });

    /**
     * Sends the first two checkpoints' worth of `data`, waits until the store
     * holds them durably, then cuts the stream with `cut`: the store must then
     * say it holds exactly those bytes, whenever it notices the cut.
     */
    async function cutUpload(
      accountId: string,
      uploadId: string,
      data: Buffer,
      cut: 'cancel' | 'drop connection',
    ): Promise<number> {
      const sent = 2 * store.checkpointBytes;
      const proxy = cut === 'drop connection' ? await startTcpProxy(service.grpc) : undefined;
      const via = proxy ? new BackupTestClient(proxy.address, callerCredentials('gateway')) : client;
      try {
        const stream = via.openUpload(accountId, uploadId, 0);
        await stream.send(data.subarray(0, sent));
        await eventually(
          async () => Number((await client.getUpload(accountId, uploadId)).received) === sent,
          'what was sent is stored',
        );
        if (proxy) proxy.cut();
        else stream.cancel();
        expect((await refusal(stream.response)).code).toBe(proxy ? status.UNAVAILABLE : status.CANCELLED);
      } finally {
        if (proxy) {
          via.close();
          await proxy.close();
        }
      }
      expect((await client.getUpload(accountId, uploadId)).received).toBe(String(sent));
      return sent;
    }

    /** What a stream that sent `sent` bytes and ended keeps. */
    const kept = (sent: number): number => sent - (sent % store.keptUnit);

    describe.each(['cancel', 'drop connection'] as const)('an upload cut by a %s', (cut) => {
      it('resumes where the store says and yields a backup byte-identical to an uncut one', async () => {
        const data = randomBytes(3 * store.checkpointBytes + 12345);
        const [alice, bob] = [account(), account()];

        const { uploadId } = await client.createUpload(alice, data.length, sha256(data));
        const held = await cutUpload(alice, uploadId, data, cut);
        const resumed = await client.upload(alice, uploadId, data, held);
        expect(resumed).toMatchObject({ received: String(data.length), complete: true });
        expect(resumed.version).toMatchObject({ version: '1', size: String(data.length) });
        expect(Buffer.from(resumed.version!.sha256).equals(sha256(data))).toBe(true);

        await client.backup(bob, data);
        const [cutCopy, uncutCopy] = await Promise.all([client.download(alice), client.download(bob)]);
        expect(sha256(cutCopy.data).equals(sha256(data))).toBe(true);
        expect(sha256(uncutCopy.data).equals(sha256(cutCopy.data))).toBe(true);
        expect(await client.getUpload(alice, uploadId)).toMatchObject({
          received: String(data.length),
          complete: true,
          version: { version: '1' },
        });
      });
    });

    it('refuses a resume from any offset but the one it holds, and changes nothing', async () => {
      const data = randomBytes(3 * store.checkpointBytes);
      const alice = account();
      const { uploadId } = await client.createUpload(alice, data.length, sha256(data));
      const held = await cutUpload(alice, uploadId, data, 'cancel');

      for (const offset of [0, held + 1, held - 1]) {
        const stream = client.openUpload(alice, uploadId, offset);
        await stream.send(data.subarray(offset, offset + MIB));
        expect(await refusal(stream.finish())).toEqual({
          code: status.FAILED_PRECONDITION,
          details: `start.offset: the store holds ${held} bytes of this upload: expected offset ${held}, got ${offset}`,
        });
      }
      expect((await client.getUpload(alice, uploadId)).received).toBe(String(held));
      expect((await client.upload(alice, uploadId, data, held)).complete).toBe(true);
      expect(sha256((await client.download(alice)).data).equals(sha256(data))).toBe(true);
    });

    it('lets a newer stream take an upload over; the older one stops with ABORTED', async () => {
      const data = randomBytes(store.checkpointBytes + 2 * MIB);
      const alice = account();
      const { uploadId } = await client.createUpload(alice, data.length, sha256(data));
      const older = client.openUpload(alice, uploadId, 0);
      await older.send(data.subarray(0, store.checkpointBytes + MIB));
      // The older stream is writing: it stored a checkpoint, and more is on its way.
      await eventually(
        async () => Number((await client.getUpload(alice, uploadId)).received) === store.checkpointBytes,
        'the older stream stored a checkpoint',
      );
      const newer = await client.upload(alice, uploadId, data, store.checkpointBytes);
      expect(newer).toMatchObject({ complete: true, version: { version: '1' } });
      expect(await refusal(older.response)).toEqual({
        code: status.ABORTED,
        details: 'upload_id: a newer stream took this upload over (or it was cancelled); this stream stopped',
      });
      expect((await client.download(alice)).data.equals(data)).toBe(true);
    });

    it('keeps what a half-closed stream stored, and answers a completed upload again', async () => {
      const data = randomBytes(7 * MIB);
      const alice = account();
      const { uploadId } = await client.createUpload(alice, data.length, sha256(data));
      const first = client.openUpload(alice, uploadId, 0);
      await first.send(data.subarray(0, 6 * MIB));
      const partial = await first.finish();
      expect(partial).toMatchObject({ received: String(kept(6 * MIB)), complete: false });
      const held = kept(6 * MIB);
      expect((await client.getUpload(alice, uploadId)).received).toBe(String(held));

      const done = await client.upload(alice, uploadId, data, held);
      expect(done).toMatchObject({ complete: true, version: { version: '1' } });
      // The answer was lost, say: asking again with the full offset answers the same version.
      const again = await client.openUpload(alice, uploadId, data.length).finish();
      expect(again).toMatchObject({
        received: String(data.length),
        complete: true,
        version: { version: '1' },
      });
    });

    it.each([
      ['in one stream', false],
      ['after a resume', true],
    ])(
      'refuses a blob whose SHA-256 is not the declared one %s; nothing becomes a version',
      async (_, resume) => {
        const alice = account();
        const previous = randomBytes(1000);
        await client.backup(alice, previous);
        const data = randomBytes(6 * MIB);
        const declared = sha256(data);
        const sent = Buffer.from(data);
        sent[sent.length - 1] ^= 1;
        const { uploadId } = await client.createUpload(alice, data.length, declared);

        let offset = 0;
        if (resume) {
          const first = client.openUpload(alice, uploadId, 0);
          await first.send(sent.subarray(0, 5 * MIB));
          offset = Number((await first.finish()).received);
          expect(offset).toBe(kept(5 * MIB));
        }
        const answer = await refusal(client.upload(alice, uploadId, sent, offset));
        expect(answer).toEqual({
          code: status.INVALID_ARGUMENT,
          details:
            `sha256: the uploaded blob's SHA-256 is ${sha256(sent).toString('hex')}, not the declared ` +
            `${declared.toString('hex')}; the upload is discarded: start a new one`,
        });

        const listed = await client.listBackups(alice);
        expect(listed.versions.map((v) => v.version)).toEqual(['1']);
        expect(listed).toMatchObject({ reservedBytes: '0', uploads: [] });
        expect((await refusal(client.getUpload(alice, uploadId))).code).toBe(status.NOT_FOUND);
        expect((await refusal(client.openUpload(alice, uploadId, data.length).finish())).code).toBe(
          status.NOT_FOUND,
        );
        const blobs = await store.blobs();
        expect([...blobs.finished, ...blobs.pending]).not.toContain(keyOf(alice, uploadId));
        expect((await client.download(alice)).data.equals(previous)).toBe(true);
      },
    );

    it('keeps the previous backup readable until the new one is complete, then the last two', async () => {
      const alice = account();
      const [v1, v2, v3] = [randomBytes(3 * MIB), randomBytes(2 * MIB + 1), randomBytes(1 * MIB + 7)];
      const first = await client.backup(alice, v1);

      const { uploadId } = await client.createUpload(alice, v2.length, sha256(v2));
      const stream = client.openUpload(alice, uploadId, 0);
      await stream.send(v2.subarray(0, MIB));
      // Mid-upload: the newest backup is still the first, whole.
      const during = await client.download(alice);
      expect(during.backup).toMatchObject({ version: '1', size: String(v1.length) });
      expect(during.data.equals(v1)).toBe(true);
      expect((await client.listBackups(alice)).versions.map((v) => v.version)).toEqual(['1']);
      await stream.send(v2.subarray(MIB));
      expect((await stream.finish()).version).toMatchObject({ version: '2' });

      expect((await client.download(alice)).data.equals(v2)).toBe(true);
      expect((await client.download(alice, 1)).data.equals(v1)).toBe(true);
      const aliceBlobs = async (): Promise<string[]> =>
        (await store.blobs()).finished.filter((key) => key.startsWith(`${alice}/`)).sort();
      expect(await aliceBlobs()).toEqual([keyOf(alice, first.uploadId), keyOf(alice, uploadId)].sort());

      const third = await client.backup(alice, v3);
      const listed = await client.listBackups(alice);
      expect(listed.versions.map((v) => [v.version, v.size])).toEqual([
        ['3', String(v3.length)],
        ['2', String(v2.length)],
      ]);
      expect(listed).toMatchObject({ usedBytes: String(v3.length + v2.length), versionsKept: 2 });
      expect(await refusal(client.download(alice, 1))).toEqual({
        code: status.NOT_FOUND,
        details: 'version: no version 1',
      });
      // The oldest blob is gone from storage, not only from the listing.
      expect(await aliceBlobs()).toEqual([keyOf(alice, uploadId), keyOf(alice, third.uploadId)].sort());
      expect((await client.download(alice, 2)).data.equals(v2)).toBe(true);
    });

    it('downloads from an offset, in chunks that say where they start', async () => {
      const alice = account();
      const data = randomBytes(5 * MIB + 999);
      const { version } = await client.backup(alice, data);
      const offset = 2 * MIB + 12345;

      const resumed = await client.download(alice, Number(version), offset);
      expect(resumed.backup).toMatchObject({ version, size: String(data.length) });
      expect(resumed.data.equals(data.subarray(offset))).toBe(true);
      expect(resumed.offsets[0]).toBe(offset);
      expect(resumed.offsets.length).toBeGreaterThan(1);

      const atEnd = await client.download(alice, 0, data.length);
      expect(atEnd.data).toHaveLength(0);
      expect(atEnd.backup).toMatchObject({ version });
      expect(await refusal(client.download(alice, 0, data.length + 1))).toEqual({
        code: status.OUT_OF_RANGE,
        details: `offset: ${data.length + 1} is past the end of version ${version} (${data.length} bytes)`,
      });
    });

    it("lets no other account read, resume, cancel or list an account's backups", async () => {
      const [alice, mallory] = [account(), account()];
      const data = randomBytes(2 * MIB);
      await client.backup(alice, data);
      const { uploadId } = await client.createUpload(alice, data.length, sha256(data));
      const first = client.openUpload(alice, uploadId, 0);
      await first.send(data.subarray(0, MIB));
      const held = Number((await first.finish()).received);

      const unknown = await refusal(client.getUpload(mallory, randomUUID()));
      expect(unknown).toEqual({
        code: status.NOT_FOUND,
        details: 'upload_id: no such upload (it may have expired)',
      });
      expect(await refusal(client.getUpload(mallory, uploadId))).toEqual(unknown);
      expect(await refusal(client.openUpload(mallory, uploadId, held).finish())).toEqual(unknown);
      expect(await refusal(client.cancelUpload(mallory, uploadId))).toEqual(unknown);
      expect(await refusal(client.download(mallory))).toEqual({
        code: status.NOT_FOUND,
        details: 'version: the account has no backup yet',
      });
      expect(await refusal(client.download(mallory, 1))).toEqual({
        code: status.NOT_FOUND,
        details: 'version: no version 1',
      });
      expect(await client.listBackups(mallory)).toMatchObject({
        versions: [],
        uploads: [],
        reservedBytes: '0',
      });

      // Alice's upload is untouched and still hers to finish.
      expect((await client.getUpload(alice, uploadId)).received).toBe(String(held));
      expect((await client.upload(alice, uploadId, data, held)).complete).toBe(true);
    });

    it('cancels an upload, releasing its reservation and removing its bytes', async () => {
      const alice = account();
      const data = randomBytes(6 * MIB);
      const { uploadId } = await client.createUpload(alice, data.length, sha256(data));
      const first = client.openUpload(alice, uploadId, 0);
      await first.send(data.subarray(0, 5 * MIB));
      await first.finish();
      expect(await client.listBackups(alice)).toMatchObject({
        reservedBytes: String(data.length),
        uploads: [{ uploadId, size: String(data.length) }],
      });

      await client.cancelUpload(alice, uploadId);
      expect(await client.listBackups(alice)).toMatchObject({ reservedBytes: '0', uploads: [] });
      expect((await refusal(client.getUpload(alice, uploadId))).code).toBe(status.NOT_FOUND);
      const blobs = await store.blobs();
      expect([...blobs.finished, ...blobs.pending]).not.toContain(keyOf(alice, uploadId));
    });

    describe('with a quota of 1000 bytes', () => {
      let small: RunningStore;
      let smallClient: BackupTestClient;

      beforeAll(async () => {
        small = await store.start({ BACKUP_QUOTA_BYTES: '1000' });
        smallClient = new BackupTestClient(small.grpc, callerCredentials('gateway'));
      });

      afterAll(async () => {
        smallClient?.close();
        await small?.stop();
      });

      it('refuses an upload over the quota with RESOURCE_EXHAUSTED, and changes nothing', async () => {
        const alice = account();
        const before = await store.blobs();
        expect(await refusal(smallClient.createUpload(alice, 1001, sha256(randomBytes(1))))).toEqual({
          code: status.RESOURCE_EXHAUSTED,
          details: 'size: 1001 bytes is over the quota of 1000 bytes',
        });
        expect(await smallClient.listBackups(alice)).toMatchObject({
          quotaBytes: '1000',
          usedBytes: '0',
          reservedBytes: '0',
          uploads: [],
        });
        expect(await store.blobs()).toEqual(before);
      });

      it('lets concurrent uploads reserve no more than the quota together', async () => {
        const alice = account();
        const attempts = await Promise.allSettled(
          Array.from({ length: 5 }, () => smallClient.createUpload(alice, 400, sha256(randomBytes(1)))),
        );
        expect(attempts.filter((attempt) => attempt.status === 'fulfilled')).toHaveLength(2);
        for (const attempt of attempts) {
          if (attempt.status === 'rejected') {
            expect(attempt.reason).toMatchObject({
              code: status.RESOURCE_EXHAUSTED,
              details:
                'size: 400 bytes would exceed the quota of 1000 bytes: uploads in progress reserve 800',
            });
          }
        }
        expect((await smallClient.listBackups(alice)).reservedBytes).toBe('800');
      });

      it('replaces a backup of the whole quota, keeping only what fits', async () => {
        const alice = account();
        const [full, next] = [randomBytes(1000), randomBytes(1000)];
        await smallClient.backup(alice, full);
        // The kept version does not block the next upload ...
        await smallClient.backup(alice, next);
        // ... which, once complete, pushes out what no longer fits.
        const listed = await smallClient.listBackups(alice);
        expect(listed.versions.map((v) => v.version)).toEqual(['2']);
        expect(listed.usedBytes).toBe('1000');
        expect((await smallClient.download(alice)).data.equals(next)).toBe(true);
        const second = (await smallClient.listBackups(alice)).versions[0];
        expect(second.version).toBe('2');
        expect((await store.blobs()).finished.filter((key) => key.startsWith(`${alice}/`))).toHaveLength(1);
      });
    });

    describe('with uploads expiring after 10 s', () => {
      let expiring: RunningStore;
      let expiringClient: BackupTestClient;

      beforeAll(async () => {
        expiring = await store.start({
          BACKUP_UPLOAD_EXPIRY_SECONDS: '10',
          BACKUP_SWEEP_INTERVAL_SECONDS: '1',
        });
        expiringClient = new BackupTestClient(expiring.grpc, callerCredentials('gateway'));
      });

      afterAll(async () => {
        expiringClient?.close();
        await expiring?.stop();
      });

      it('deletes an abandoned upload and its bytes', async () => {
        const alice = account();
        const data = randomBytes(6 * MIB);
        const { uploadId } = await expiringClient.createUpload(alice, data.length, sha256(data));
        const key = keyOf(alice, uploadId);
        expect((await store.blobs()).pending).toContain(key);
        const first = expiringClient.openUpload(alice, uploadId, 0);
        await first.send(data.subarray(0, 5 * MIB));
        expect((await first.finish()).received).toBe(String(kept(5 * MIB)));

        await eventually(async () => {
          const blobs = await store.blobs();
          return !blobs.pending.includes(key) && !blobs.finished.includes(key);
        }, 'the abandoned upload is removed from storage');
        expect((await refusal(expiringClient.getUpload(alice, uploadId))).code).toBe(status.NOT_FOUND);
        expect(await expiringClient.listBackups(alice)).toMatchObject({ reservedBytes: '0', uploads: [] });
      });
    });
  });
}
