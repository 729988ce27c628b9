import { Inject, Injectable } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import { grpcError } from '@sotto/platform/grpc';
import { BLOB_STORE, BlobMissingError, type BlobStore } from '../blobs/blob-store';
import { BackupMetrics } from '../metrics/backup-metrics';
import type { AccountId } from '../validation';
import { VersionsRepository, type VersionRecord } from './versions.repository';

/** Bytes per DownloadBackup message: large enough to keep per-message costs small, well under gRPC's 4 MiB limit. */
export const DOWNLOAD_CHUNK_BYTES = 1024 * 1024;

export interface Download {
  readonly backup: VersionRecord;
  /** The blob from the requested offset, read only as fast as it is consumed. */
  readonly chunks: AsyncIterable<{ offset: number; data: Uint8Array }>;
}

/** Completed versions: listing and streaming download. */
@Injectable()
export class VersionsService {
  constructor(
    private readonly versions: VersionsRepository,
    private readonly metrics: BackupMetrics,
    @Inject(BLOB_STORE) private readonly blobs: BlobStore,
  ) {}

  list(accountId: AccountId): Promise<VersionRecord[]> {
    return this.versions.list(accountId);
  }

  /** Opens a version (the newest when `version` is undefined) for reading from `offset`. */
  async download(accountId: AccountId, version: number | undefined, offset: number): Promise<Download> {
    const backup = await this.versions.find(accountId, version);
    if (!backup) {
      throw grpcError(
        status.NOT_FOUND,
        version === undefined ? 'version: the account has no backup yet' : `version: no version ${version}`,
      );
    }
    if (offset > backup.size) {
      throw grpcError(
        status.OUT_OF_RANGE,
        `offset: ${offset} is past the end of version ${backup.version} (${backup.size} bytes)`,
      );
    }
    return { backup, chunks: this.read(backup, offset) };
  }

  private async *read(
    backup: VersionRecord,
    offset: number,
  ): AsyncIterable<{ offset: number; data: Uint8Array }> {
    if (offset === backup.size) return;
    let position = offset;
    try {
      for await (const data of this.blobs.read(backup.blobKey, offset, DOWNLOAD_CHUNK_BYTES)) {
        yield { offset: position, data };
        position += data.length;
        this.metrics.bytesDownloaded(data.length);
      }
    } catch (error) {
      if (error instanceof BlobMissingError) {
        throw grpcError(
          status.NOT_FOUND,
          `version: version ${backup.version} was pruned; download the newest`,
        );
      }
      throw error;
    }
  }
}
