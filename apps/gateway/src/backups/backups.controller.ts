import { Controller } from '@nestjs/common';
import {
  Metadata,
  type ServerReadableStream,
  type ServerWritableStream,
  type ServiceError,
} from '@grpc/grpc-js';
import type {
  DownloadBackupResponse as StoreChunk,
  UploadChunksResponse,
} from '@sotto/contracts/generated/sotto/backup/v1/backup';
import {
  BackupServiceService,
  type CancelBackupUploadRequest,
  type CancelBackupUploadResponse,
  type CreateBackupUploadRequest,
  type CreateBackupUploadResponse,
  type DownloadBackupRequest,
  type DownloadBackupResponse,
  type GetBackupStatusResponse,
  type GetBackupUploadRequest,
  type GetBackupUploadResponse,
  type UploadBackupRequest,
  type UploadBackupResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { GrpcService, upstreamError, type GrpcController } from '@sotto/platform/grpc';
import { Observable } from 'rxjs';
import { callerOf } from '../auth/device-auth.guard';
import { Upstream } from '../upstream/upstream';

const STORE = 'backup-store';

/**
 * The public BackupService. The account is always the caller's: every request
 * to the backup store carries the authenticated account id, never one the
 * client names. The byte streams are relayed with backpressure both ways, so
 * a large backup never piles up in the gateway's memory.
 */
@Controller()
@GrpcService(BackupServiceService)
export class BackupsController implements GrpcController<typeof BackupServiceService> {
  constructor(private readonly upstream: Upstream) {}

  createBackupUpload(
    request: CreateBackupUploadRequest,
    metadata: Metadata,
  ): Promise<CreateBackupUploadResponse> {
    return this.upstream.backupStore.createUpload({ ...request, accountId: callerOf(metadata).accountId });
  }

  uploadBackup(
    requests: Observable<UploadBackupRequest>,
    metadata: Metadata,
    call: ServerReadableStream<UploadBackupRequest, UploadBackupResponse>,
  ): Observable<UploadBackupResponse> {
    const { accountId } = callerOf(metadata);
    // An Observable, not a Promise: the framework holds back the request
    // stream's end until a returned Promise settles, which would be never.
    return new Observable<UploadBackupResponse>((subscriber) => {
      let clientDone: 'ended' | 'failed' | undefined;
      let waitingForDrain = false;
      const store = this.upstream.backupStore.uploadChunks(
        new Metadata(),
        {},
        (error: ServiceError | null, response?: UploadChunksResponse) => {
          if (error || !response) {
            subscriber.error(upstreamError(STORE, error));
            return;
          }
          subscriber.next(response);
          subscriber.complete();
        },
      );
      const inbound = requests.subscribe({
        next: (message) => {
          const sent = store.write(
            message.start
              ? { start: { accountId, uploadId: message.start.uploadId, offset: message.start.offset } }
              : { chunk: message.chunk },
          );
          if (!sent && !waitingForDrain) {
            waitingForDrain = true;
            call.pause();
            store.once('drain', () => {
              waitingForDrain = false;
              call.resume();
            });
          }
        },
        // The client went away: the store keeps what it holds durably, for a resume.
        error: () => {
          clientDone = 'failed';
          store.cancel();
        },
        complete: () => {
          clientDone = 'ended';
          store.end();
        },
      });
      return () => {
        inbound.unsubscribe();
        // Still streaming when the caller is gone: stop the store's side too.
        if (clientDone !== 'ended') store.cancel();
      };
    });
  }

  getBackupUpload(request: GetBackupUploadRequest, metadata: Metadata): Promise<GetBackupUploadResponse> {
    return this.upstream.backupStore.getUpload({ ...request, accountId: callerOf(metadata).accountId });
  }

  async cancelBackupUpload(
    request: CancelBackupUploadRequest,
    metadata: Metadata,
  ): Promise<CancelBackupUploadResponse> {
    await this.upstream.backupStore.cancelUpload({ ...request, accountId: callerOf(metadata).accountId });
    return {};
  }

  async getBackupStatus(_request: unknown, metadata: Metadata): Promise<GetBackupStatusResponse> {
    const { accountId } = callerOf(metadata);
    const [backups, { vault }] = await Promise.all([
      this.upstream.backupStore.listBackups({ accountId }),
      this.upstream.keyVault.getVaultStatus({ accountId }),
    ]);
    return { ...backups, vault };
  }

  downloadBackup(
    request: DownloadBackupRequest,
    metadata: Metadata,
    call: ServerWritableStream<DownloadBackupRequest, DownloadBackupResponse>,
  ): Observable<DownloadBackupResponse> {
    const { accountId } = callerOf(metadata);
    // Chunks are written straight to the client's stream, pausing the store's
    // stream whenever the client's is full; the observable only says when it ends.
    return new Observable<DownloadBackupResponse>((subscriber) => {
      const store = this.upstream.backupStore.downloadBackup({ ...request, accountId });
      store.on('data', (chunk: StoreChunk) => {
        // The store's message goes out as it came in: the same fields, the same bytes.
        if (!call.write(chunk)) {
          store.pause();
          call.once('drain', () => store.resume());
        }
      });
      store.on('error', (error: ServiceError) => subscriber.error(upstreamError(STORE, error)));
      store.on('end', () => subscriber.complete());
      return () => store.cancel();
    });
  }
}
