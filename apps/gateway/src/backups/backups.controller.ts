import { Controller } from '@nestjs/common';
import {
  type ClientWritableStream,
  type Metadata,
  type ServerReadableStream,
  type ServerWritableStream,
  type ServiceError,
} from '@grpc/grpc-js';
import type {
  DownloadBackupResponse as StoreChunk,
  UploadChunksRequest,
  UploadChunksResponse,
} from '@sotto/contracts/generated/client/sotto/backup/v1/backup';
import {
  BackupServiceControllerMethods,
  type BackupServiceController,
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
} from '@sotto/contracts/generated/nest/sotto/gateway/v1/gateway';
import { callUpstream, upstreamError } from '@sotto/platform/grpc';
import { Observable } from 'rxjs';
import { Authenticator } from '../auth/authenticator';
import { Upstream } from '../upstream/upstream.module';

const STORE = 'backup-store';

/** The same bytes as a Buffer, without copying: chunks are up to 1 MiB each. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * The public BackupService. The account is always the caller's: every request
 * to the backup store carries the authenticated account id, never one the
 * client names. The byte streams are relayed with backpressure both ways, so
 * a large backup never piles up in the gateway's memory.
 */
@Controller()
@BackupServiceControllerMethods()
export class BackupsController implements BackupServiceController {
  constructor(
    private readonly upstream: Upstream,
    private readonly auth: Authenticator,
  ) {}

  async createBackupUpload(
    request: CreateBackupUploadRequest,
    metadata?: Metadata,
  ): Promise<CreateBackupUploadResponse> {
    const { accountId } = await this.auth.authenticate(metadata);
    return callUpstream(STORE, this.upstream.backupStore.createUpload({ ...request, accountId }));
  }

  uploadBackup(
    requests: Observable<UploadBackupRequest>,
    metadata?: Metadata,
    call?: ServerReadableStream<UploadBackupRequest, UploadBackupResponse>,
  ): Observable<UploadBackupResponse> {
    // An Observable, not a Promise: the framework holds back the request
    // stream's end until a returned Promise settles, which would be never.
    return new Observable<UploadBackupResponse>((subscriber) => {
      // Messages that arrive before the caller is authenticated wait here, with the call paused.
      const early: UploadBackupRequest[] = [];
      let clientDone: 'ended' | 'failed' | undefined;
      let store: ClientWritableStream<UploadChunksRequest> | undefined;
      let accountId = '';
      let waitingForDrain = false;

      const forward = (message: UploadBackupRequest): void => {
        const sent = store!.write(
          message.start
            ? { start: { accountId, uploadId: message.start.uploadId, offset: message.start.offset } }
            : { chunk: message.chunk === undefined ? undefined : asBuffer(message.chunk) },
        );
        if (!sent && call && !waitingForDrain) {
          waitingForDrain = true;
          call.pause();
          store!.once('drain', () => {
            waitingForDrain = false;
            call.resume();
          });
        }
      };
      const inbound = requests.subscribe({
        next: (message) => {
          if (store) return forward(message);
          early.push(message);
          call?.pause();
        },
        // The client went away: the store keeps what it holds durably, for a resume.
        error: () => {
          clientDone = 'failed';
          store?.cancel();
        },
        complete: () => {
          clientDone = 'ended';
          store?.end();
        },
      });

      this.auth.authenticate(metadata).then(
        (device) => {
          if (clientDone === 'failed' || subscriber.closed) return;
          accountId = device.accountId;
          store = this.upstream.backupStreams.uploadChunks(
            (error: ServiceError | null, response?: UploadChunksResponse) => {
              if (error || !response) return subscriber.error(upstreamError(STORE, error));
              subscriber.next(response);
              subscriber.complete();
            },
          );
          early.splice(0).forEach(forward);
          if (clientDone === 'ended') store.end();
          else if (!waitingForDrain) call?.resume();
        },
        (error: unknown) => subscriber.error(error),
      );
      return () => {
        inbound.unsubscribe();
        // Still streaming when the caller is gone: stop the store's side too.
        if (clientDone !== 'ended') store?.cancel();
      };
    });
  }

  async getBackupUpload(
    request: GetBackupUploadRequest,
    metadata?: Metadata,
  ): Promise<GetBackupUploadResponse> {
    const { accountId } = await this.auth.authenticate(metadata);
    const upload = await callUpstream(STORE, this.upstream.backupStore.getUpload({ ...request, accountId }));
    return upload;
  }

  async cancelBackupUpload(
    request: CancelBackupUploadRequest,
    metadata?: Metadata,
  ): Promise<CancelBackupUploadResponse> {
    const { accountId } = await this.auth.authenticate(metadata);
    await callUpstream(STORE, this.upstream.backupStore.cancelUpload({ ...request, accountId }));
    return {};
  }

  async getBackupStatus(_request: unknown, metadata?: Metadata): Promise<GetBackupStatusResponse> {
    const { accountId } = await this.auth.authenticate(metadata);
    const [backups, vault] = await Promise.all([
      callUpstream(STORE, this.upstream.backupStore.listBackups({ accountId })),
      callUpstream('key-vault', this.upstream.keyVault.getVaultStatus({ accountId })),
    ]);
    return { ...backups, vault };
  }

  downloadBackup(
    request: DownloadBackupRequest,
    metadata?: Metadata,
    call?: ServerWritableStream<DownloadBackupRequest, DownloadBackupResponse>,
  ): Observable<DownloadBackupResponse> {
    // Chunks are written straight to the client's stream, pausing the store's
    // stream whenever the client's is full; the observable only says when it ends.
    return new Observable<DownloadBackupResponse>((subscriber) => {
      let cancelled = false;
      let store: ReturnType<Upstream['backupStreams']['downloadBackup']> | undefined;
      this.auth
        .authenticate(metadata)
        .then(({ accountId }) => {
          if (cancelled) return;
          const stream = this.upstream.backupStreams.downloadBackup({ ...request, accountId });
          store = stream;
          stream.on('data', (chunk: StoreChunk) => {
            // The store's bytes go out as they came in: a Buffer is a Uint8Array.
            const message: DownloadBackupResponse = chunk;
            if (!call) {
              subscriber.next(message);
            } else if (!call.write(message)) {
              stream.pause();
              call.once('drain', () => stream.resume());
            }
          });
          stream.on('error', (error: ServiceError) => subscriber.error(upstreamError(STORE, error)));
          stream.on('end', () => subscriber.complete());
        })
        .catch((error: unknown) => subscriber.error(error));
      return () => {
        cancelled = true;
        store?.cancel();
      };
    });
  }
}
