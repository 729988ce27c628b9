import { once } from 'node:events';
import { Controller, Inject } from '@nestjs/common';
import { status, type Metadata, type ServerReadableStream, type ServerWritableStream } from '@grpc/grpc-js';
import {
  BackupStoreServiceService,
  type CancelUploadRequest,
  type CancelUploadResponse,
  type CreateUploadRequest,
  type CreateUploadResponse,
  type DownloadBackupRequest,
  type DownloadBackupResponse,
  type GetUploadRequest,
  type GetUploadResponse,
  type ListBackupsRequest,
  type ListBackupsResponse,
  type UploadChunksRequest,
  type UploadChunksResponse,
} from '@sotto/contracts/generated/sotto/backup/v1/backup';
import type { BackupVersion } from '@sotto/contracts/generated/sotto/common/v1/backup';
import { grpcError, GrpcService, requireAccountId, type GrpcController } from '@sotto/platform/grpc';
import { Observable } from 'rxjs';
import { BACKUP_POLICY, type BackupPolicy } from './env';
import { Inbound } from './uploads/inbound';
import { MAX_CHUNK_BYTES, UploadsService } from './uploads/uploads.service';
import { parseSha256, parseUint64, parseUploadId } from './validation';
import type { VersionRecord } from './versions/versions.repository';
import { VersionsService } from './versions/versions.service';

function toBackupVersion(version: VersionRecord): BackupVersion {
  return {
    version: String(version.version),
    size: String(version.size),
    sha256: version.sha256,
    createdAtMs: String(version.createdAt.getTime()),
  };
}

/** The chunks that follow a stream's `start`; a second `start` is refused. */
async function* chunksOf(inbound: Inbound<UploadChunksRequest>): AsyncIterable<Uint8Array> {
  for (let message = await inbound.next(); message; message = await inbound.next()) {
    if (message.start) {
      throw grpcError(
        status.INVALID_ARGUMENT,
        'start: only the first message of a stream may name the upload',
      );
    }
    if (message.chunk && message.chunk.length > 0) yield message.chunk;
  }
}

/** gRPC in, gRPC out for the BackupStoreService contract. */
@Controller()
@GrpcService(BackupStoreServiceService)
export class BackupController implements GrpcController<typeof BackupStoreServiceService> {
  constructor(
    private readonly uploads: UploadsService,
    private readonly versions: VersionsService,
    @Inject(BACKUP_POLICY) private readonly policy: BackupPolicy,
  ) {}

  async createUpload(request: CreateUploadRequest): Promise<CreateUploadResponse> {
    const accountId = requireAccountId(request.accountId);
    const size = parseUint64(request.size, 'size', { min: 1 });
    const sha256 = parseSha256(request.sha256);
    const { uploadId, expiresAt } = await this.uploads.create(accountId, size, sha256);
    return { uploadId, maxChunkSize: MAX_CHUNK_BYTES, expiresAtMs: String(expiresAt.getTime()) };
  }

  uploadChunks(
    requests: Observable<UploadChunksRequest>,
    _metadata?: Metadata,
    call?: ServerReadableStream<UploadChunksRequest, UploadChunksResponse>,
  ): Observable<UploadChunksResponse> {
    return new Observable<UploadChunksResponse>((subscriber) => {
      const inbound = new Inbound(requests, call);
      this.receive(inbound).then(
        (response) => {
          subscriber.next(response);
          subscriber.complete();
        },
        (error: unknown) => subscriber.error(error),
      );
      // Cancelled or cut by the client: stop taking chunks; what was stored is recorded all the same.
      return () => inbound.cancel();
    });
  }

  private async receive(inbound: Inbound<UploadChunksRequest>): Promise<UploadChunksResponse> {
    const start = (await inbound.next())?.start;
    if (!start) {
      throw grpcError(
        status.INVALID_ARGUMENT,
        'start: the first message must name the upload and the offset',
      );
    }
    const outcome = await this.uploads.receive(
      requireAccountId(start.accountId, 'start.account_id'),
      parseUploadId(start.uploadId, 'start.upload_id'),
      parseUint64(start.offset, 'start.offset'),
      {
        chunks: chunksOf(inbound),
        stop: () => inbound.cancel(),
        onEnd: (listener) => inbound.onEnd(listener),
        signal: inbound.signal,
      },
    );
    return {
      received: String(outcome.received),
      complete: outcome.version !== undefined,
      version: outcome.version && toBackupVersion(outcome.version),
    };
  }

  async getUpload(request: GetUploadRequest): Promise<GetUploadResponse> {
    const upload = await this.uploads.get(
      requireAccountId(request.accountId),
      parseUploadId(request.uploadId),
    );
    return {
      received: String(upload.received),
      size: String(upload.size),
      complete: upload.version !== undefined,
      version: upload.version && toBackupVersion(upload.version),
      expiresAtMs: String(upload.expiresAt.getTime()),
    };
  }

  async cancelUpload(request: CancelUploadRequest): Promise<CancelUploadResponse> {
    await this.uploads.cancel(requireAccountId(request.accountId), parseUploadId(request.uploadId));
    return {};
  }

  async listBackups(request: ListBackupsRequest): Promise<ListBackupsResponse> {
    const accountId = requireAccountId(request.accountId);
    const [versions, uploads] = await Promise.all([
      this.versions.list(accountId),
      this.uploads.inProgress(accountId),
    ]);
    return {
      versions: versions.map(toBackupVersion),
      quotaBytes: String(this.policy.quotaBytes),
      usedBytes: String(versions.reduce((total, version) => total + version.size, 0)),
      reservedBytes: String(uploads.reduce((total, { upload }) => total + upload.size, 0)),
      uploads: uploads.map(({ upload, expiresAt }) => ({
        uploadId: upload.uploadId,
        size: String(upload.size),
        received: String(upload.received),
        expiresAtMs: String(expiresAt.getTime()),
      })),
      versionsKept: this.policy.versionsKept,
    };
  }

  downloadBackup(
    request: DownloadBackupRequest,
    _metadata?: Metadata,
    call?: ServerWritableStream<DownloadBackupRequest, DownloadBackupResponse>,
  ): Observable<DownloadBackupResponse> {
    return new Observable<DownloadBackupResponse>((subscriber) => {
      const cancelled = new AbortController();
      const send = async (): Promise<void> => {
        const accountId = requireAccountId(request.accountId);
        const version = parseUint64(request.version, 'version');
        const offset = parseUint64(request.offset, 'offset');
        const download = await this.versions.download(accountId, version === 0 ? undefined : version, offset);
        let backup: BackupVersion | undefined = toBackupVersion(download.backup);
        for await (const chunk of download.chunks) {
          // Read the next chunk only once gRPC has room for it: memory stays at a few chunks.
          if (call?.writableNeedDrain) await once(call, 'drain', { signal: cancelled.signal });
          if (cancelled.signal.aborted) return;
          subscriber.next({ offset: String(chunk.offset), data: chunk.data, backup });
          backup = undefined;
        }
        // Nothing left to send (offset at the end): the version alone, so the client learns what it has.
        if (backup) subscriber.next({ offset: String(offset), data: new Uint8Array(0), backup });
        subscriber.complete();
      };
      send().catch((error: unknown) => {
        if (!cancelled.signal.aborted) subscriber.error(error);
      });
      return () => cancelled.abort();
    });
  }
}
