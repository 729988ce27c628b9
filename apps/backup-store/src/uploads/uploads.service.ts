import { createHash, randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { Metadata, status } from '@grpc/grpc-js';
import { grpcError, refuse } from '@sotto/platform/grpc';
import type { AccountId } from '@sotto/platform/ids';
import { BLOB_STORE, type BlobStore, type Checkpoint, type PendingBlob } from '../blobs/blob-store';
import { BufferBudgetExhaustedError, BufferWaitCancelledError } from '../blobs/buffer-budget';
import { DoomedBlobs } from '../cleanup/doomed-blobs';
import { BACKUP_POLICY, MAX_CHUNK_BYTES, type BackupPolicy } from '../env';
import { BackupMetrics } from '../metrics/backup-metrics';
import type { UploadId } from '../validation';
import { VersionsRepository, type VersionRecord } from '../versions/versions.repository';
import { UploadStreams } from './upload-streams';
import { UploadsRepository, type UploadRecord } from './uploads.repository';

/**
 * The largest chunk a stream may carry. Well under gRPC's default 4 MiB
 * message limit, and large enough that per-message costs do not dominate.
 */
export { MAX_CHUNK_BYTES };
/** Uploads one account may have in progress at once. */
export const MAX_UPLOADS_IN_PROGRESS = 8;

/**
 * When a stream refused for a full S3 upload buffer may come back. The store
 * itself queues streams for room (BACKUP_S3_BUFFER_WAIT_SECONDS), so one that
 * comes back simply waits in line again: this only spaces the reconnects.
 */
export const BUSY_RETRY_AFTER_MS = 1_000;

export interface UploadState {
  readonly received: number;
  readonly size: number;
  readonly version: VersionRecord | undefined;
  readonly expiresAt: Date;
}

/** The chunks of one UploadChunks stream, after its `start`. */
export interface ChunkSource {
  readonly chunks: AsyncIterable<Uint8Array>;
  /** Stops taking chunks: a newer stream of the same upload takes over. */
  stop(): void;
  /** Calls `listener` once the client is done sending, or gone. */
  onEnd(listener: () => void): void;
  /** Aborts once the stream is cancelled by its client or stopped: a wait for buffer room ends. */
  readonly signal: AbortSignal;
}

export interface StreamOutcome {
  readonly received: number;
  readonly version: VersionRecord | undefined;
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

const supersededError = () =>
  grpcError(
    status.ABORTED,
    'upload_id: a newer stream took this upload over (or it was cancelled); this stream stopped',
  );

/** Resumable uploads: quota reservations, chunk streams, digest check and completion into a version. */
@Injectable()
export class UploadsService {
  private readonly logger = new Logger(UploadsService.name);

  constructor(
    private readonly uploads: UploadsRepository,
    private readonly versions: VersionsRepository,
    private readonly streams: UploadStreams,
    private readonly doomed: DoomedBlobs,
    private readonly metrics: BackupMetrics,
    @Inject(BLOB_STORE) private readonly blobs: BlobStore,
    @Inject(BACKUP_POLICY) private readonly policy: BackupPolicy,
  ) {}

  /** Reserves `size` bytes of the account's quota and starts a blob; refused if the reservations would exceed it. */
  async create(
    accountId: AccountId,
    size: number,
    sha256: Uint8Array,
  ): Promise<{ uploadId: UploadId; expiresAt: Date }> {
    const quota = this.policy.quotaBytes;
    if (size > quota) {
      this.metrics.quotaRefused('bytes');
      throw refuse('quota', `size: ${size} bytes is over the quota of ${quota} bytes`);
    }
    const uploadId = randomUUID() as UploadId;
    let blob: PendingBlob | undefined;
    try {
      const upload = await this.uploads.withAccountLocked(accountId, async (account) => {
        const reserved = await account.reservations();
        if (reserved.uploads >= MAX_UPLOADS_IN_PROGRESS) {
          this.metrics.quotaRefused('uploads');
          throw refuse(
            'quota',
            `${reserved.uploads} uploads are in progress for this account, the most it may have; finish or cancel one`,
          );
        }
        if (reserved.bytes + size > quota) {
          this.metrics.quotaRefused('bytes');
          throw refuse(
            'quota',
            `size: ${size} bytes would exceed the quota of ${quota} bytes: uploads in progress reserve ${reserved.bytes}`,
          );
        }
        blob = await this.blobs.begin(`${accountId}/${uploadId}`);
        return account.insert({ uploadId, size, sha256, blob });
      });
      return { uploadId, expiresAt: this.expiry(upload) };
    } catch (error) {
      // The metadata was rolled back: the blob just begun belongs to nothing.
      if (blob) await this.blobs.remove(blob).catch(() => undefined);
      throw error;
    }
  }

  async get(accountId: AccountId, uploadId: UploadId): Promise<UploadState> {
    await this.streams.settled(`${accountId}/${uploadId}`);
    const upload = await this.find(accountId, uploadId);
    return {
      received: upload.received,
      size: upload.size,
      version: upload.version === null ? undefined : this.versionOf(upload, upload.version),
      expiresAt: this.expiry(upload),
    };
  }

  async inProgress(accountId: AccountId): Promise<{ upload: UploadRecord; expiresAt: Date }[]> {
    const uploads = await this.uploads.inProgress(accountId);
    return uploads.map((upload) => ({ upload, expiresAt: this.expiry(upload) }));
  }

  async cancel(accountId: AccountId, uploadId: UploadId): Promise<void> {
    const blob = await this.uploads.discard(accountId, uploadId);
    if (blob) return this.doomed.removeNow(accountId, [blob]);
    const upload = await this.find(accountId, uploadId);
    throw refuse(
      'upload-state',
      `upload_id: the upload is complete: it is version ${upload.version}; nothing to cancel`,
    );
  }

  /**
   * Appends a stream of chunks to an upload from `offset`, which must be
   * what the store holds. Whatever happens to the stream, the bytes stored
   * durably are recorded before this settles; when the last byte is in, the
   * digest is checked and the upload becomes a version.
   */
  async receive(
    accountId: AccountId,
    uploadId: UploadId,
    offset: number,
    source: ChunkSource,
  ): Promise<StreamOutcome> {
    const writer = randomUUID();
    const upload = await this.uploads.claim(accountId, uploadId, offset, writer);
    if (!upload) return this.refuseClaim(accountId, uploadId, offset);

    let superseded = false;
    const stream = await this.streams.enter(`${accountId}/${uploadId}`, () => {
      superseded = true;
      source.stop();
    });
    source.onEnd(() => stream.closing());
    try {
      const { received, digest } = await this.append(accountId, upload, writer, offset, source);
      if (superseded) throw supersededError();
      stream.closing();
      if (received < upload.size) return { received, version: undefined };
      return { received, version: await this.complete(accountId, upload, digest) };
    } finally {
      stream.release();
    }
  }

  /**
   * Writes chunks to the blob, recording each checkpoint as `writer`, and
   * records the last one whether the chunks ended, failed or were cut. The
   * digest of the whole blob when the chunks covered it from its first byte.
   */
  private async append(
    accountId: AccountId,
    upload: UploadRecord,
    writer: string,
    offset: number,
    source: Pick<ChunkSource, 'chunks' | 'signal'>,
  ): Promise<{ received: number; digest: Buffer | undefined }> {
    const hash = offset === 0 ? createHash('sha256') : undefined;
    const blobWriter = this.blobs.append(
      upload.blob,
      { received: offset, parts: upload.parts, size: upload.size },
      source.signal,
    );
    let received = offset;
    const record = async (checkpoint: Checkpoint | undefined): Promise<void> => {
      if (!checkpoint) return;
      if (!(await this.uploads.record(accountId, upload.uploadId, writer, checkpoint)))
        throw supersededError();
      received = checkpoint.received;
    };

    let failure: unknown;
    try {
      let position = offset;
      for await (const chunk of source.chunks) {
        if (chunk.length > MAX_CHUNK_BYTES) {
          throw refuse(
            'too-large',
            `chunk: ${chunk.length} bytes is over the maximum chunk size of ${MAX_CHUNK_BYTES} bytes`,
          );
        }
        if (position + chunk.length > upload.size) {
          throw grpcError(
            status.INVALID_ARGUMENT,
            `chunk: ends at byte ${position + chunk.length}, past the declared size of ${upload.size} bytes`,
          );
        }
        hash?.update(chunk);
        position += chunk.length;
        this.metrics.bytesUploaded(chunk.length);
        await record(await blobWriter.write(chunk));
      }
    } catch (error) {
      // A stream that went away while it waited for buffer room ends like
      // one whose chunks ended.
      if (!(error instanceof BufferWaitCancelledError)) failure = error;
    }
    try {
      await record(await blobWriter.close());
    } catch (error) {
      failure ??= error;
    }
    if (failure instanceof BufferBudgetExhaustedError) {
      const metadata = new Metadata();
      metadata.set('retry-after-ms', String(BUSY_RETRY_AFTER_MS));
      throw refuse(
        'busy',
        `the ${failure.what} (${failure.capacity} bytes shared by all uploads) stayed full for ${failure.waitedMs} ms; ` +
          `the store holds ${received} bytes of this upload, nothing is lost: resume from offset ${received} later`,
        metadata,
      );
    }
    if (failure !== undefined) throw failure as Error;
    return { received, digest: received === upload.size ? hash?.digest() : undefined };
  }

  /** Explains why a stream could not take the upload over, or answers again for a completed one. */
  private async refuseClaim(
    accountId: AccountId,
    uploadId: UploadId,
    offset: number,
  ): Promise<StreamOutcome> {
    const upload = await this.find(accountId, uploadId);
    if (upload.version !== null) {
      if (offset === upload.size)
        return { received: upload.size, version: this.versionOf(upload, upload.version) };
      throw refuse(
        'upload-state',
        `start.offset: the upload is complete (version ${upload.version}); only offset ${upload.size} is accepted, got ${offset}`,
      );
    }
    throw refuse(
      'upload-state',
      `start.offset: the store holds ${upload.received} bytes of this upload: expected offset ${upload.received}, got ${offset}`,
    );
  }

  /** Makes the whole blob readable, checks its digest, and swaps it in as the newest version. */
  private async complete(
    accountId: AccountId,
    upload: UploadRecord,
    streamed: Buffer | undefined,
  ): Promise<VersionRecord> {
    await this.blobs.finish(upload.blob, await this.uploads.parts(accountId, upload.uploadId));
    const digest = streamed ?? (await this.digestOf(upload.blob.key));
    if (!digest.equals(upload.sha256)) {
      const blob = await this.uploads.discard(accountId, upload.uploadId);
      if (blob) await this.doomed.removeNow(accountId, [blob]);
      this.metrics.uploadCompleted('digest_mismatch');
      throw grpcError(
        status.INVALID_ARGUMENT,
        `sha256: the uploaded blob's SHA-256 is ${hex(digest)}, not the declared ${hex(upload.sha256)}; ` +
          'the upload is discarded: start a new one',
      );
    }
    const committed = await this.versions.commit(accountId, upload.uploadId, {
      keep: this.policy.versionsKept,
      quotaBytes: this.policy.quotaBytes,
    });
    if (!committed) {
      // Another stream of the same upload completed it first.
      const raced = await this.find(accountId, upload.uploadId);
      if (raced.version === null)
        throw new Error(`upload ${upload.uploadId} neither completed nor in progress`);
      return this.versionOf(raced, raced.version);
    }
    await this.doomed.removeNow(accountId, committed.doomed);
    this.metrics.uploadCompleted('version');
    this.logger.log(
      `account ${accountId}: version ${committed.version.version} (${committed.version.size} bytes); pruned ${committed.doomed.length}`,
    );
    return committed.version;
  }

  private async digestOf(key: string): Promise<Buffer> {
    const hash = createHash('sha256');
    for await (const chunk of this.blobs.read(key, 0, MAX_CHUNK_BYTES)) hash.update(chunk);
    return hash.digest();
  }

  private async find(accountId: AccountId, uploadId: UploadId): Promise<UploadRecord> {
    const upload = await this.uploads.find(accountId, uploadId);
    // Another account's upload is as absent as one that never existed.
    if (!upload) throw grpcError(status.NOT_FOUND, 'upload_id: no such upload (it may have expired)');
    return upload;
  }

  /** A completed upload as the version it became (its row outlives the version if that is pruned). */
  private versionOf(upload: UploadRecord, version: number): VersionRecord {
    return {
      version,
      size: upload.size,
      sha256: upload.sha256,
      blobKey: upload.blob.key,
      createdAt: upload.updatedAt,
    };
  }

  private expiry(upload: UploadRecord): Date {
    return new Date(upload.updatedAt.getTime() + this.policy.uploadExpirySeconds * 1000);
  }
}
