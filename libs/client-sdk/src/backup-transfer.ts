import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { status, type Metadata, type ServiceError } from '@grpc/grpc-js';
import type { BackupVersion } from '@sotto/contracts/generated/sotto/common/v1/backup';
import type {
  BackupServiceClient,
  DownloadBackupResponse,
  UploadBackupResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { SottoError } from './errors';
import { unary } from './grpc';

/** How often a cut upload or download is resumed before giving up. */
const RESUME_ATTEMPTS = 5;

export interface TransferProgress {
  readonly done: number;
  readonly total: number;
}

// Failures that a new stream can get past; anything else is the request's fault.
const RESUMABLE = new Set<number>([
  status.UNAVAILABLE,
  status.ABORTED,
  status.CANCELLED,
  status.INTERNAL,
  status.UNKNOWN,
]);

function resumable(error: unknown): boolean {
  return RESUMABLE.has((error as ServiceError).code);
}

/** Streams the file from `offset`, in chunks of at most `chunkSize`, waiting whenever the stream is full. */
function uploadFrom(
  client: BackupServiceClient,
  metadata: Metadata,
  path: string,
  uploadId: string,
  offset: number,
  chunkSize: number,
  onProgress: (sent: number) => void,
): Promise<UploadBackupResponse> {
  return new Promise((resolve, reject) => {
    const call = client.uploadBackup(metadata, (error, response) =>
      error ? reject(error) : resolve(response),
    );
    call.write({ start: { uploadId, offset: String(offset) } });
    const file = createReadStream(path, { start: offset, highWaterMark: chunkSize });
    let sent = offset;
    file.on('data', (data) => {
      // No encoding was set, so the stream yields Buffers.
      const chunk = data as Buffer;
      sent += chunk.length;
      onProgress(sent);
      if (!call.write({ chunk })) {
        file.pause();
        call.once('drain', () => file.resume());
      }
    });
    file.on('end', () => call.end());
    file.on('error', (error) => {
      call.cancel();
      reject(error);
    });
  });
}

/**
 * Uploads a backup file as a new version, resuming from what the server holds
 * whenever a stream is cut. Resolves with the version it became.
 */
export async function uploadBackupFile(options: {
  client: BackupServiceClient;
  metadata: Metadata;
  path: string;
  size: number;
  sha256: Uint8Array;
  onProgress?: (progress: TransferProgress) => void;
}): Promise<BackupVersion> {
  const { client, metadata, path, size } = options;
  const created = await unary(
    client.createBackupUpload.bind(client),
    { size: String(size), sha256: Buffer.from(options.sha256) },
    { metadata },
  );
  let offset = 0;
  for (let attempt = 1; ; attempt++) {
    try {
      const answer = await uploadFrom(
        client,
        metadata,
        path,
        created.uploadId,
        offset,
        created.maxChunkSize,
        (sent) => options.onProgress?.({ done: sent, total: size }),
      );
      if (answer.complete && answer.version) return answer.version;
      // The stream ended before the server had everything: carry on from what it holds.
      offset = Number(answer.received);
    } catch (error) {
      // A resume can race the cut stream's last write: the store then names the offset it holds.
      const raced = offset > 0 && (error as ServiceError).code === status.FAILED_PRECONDITION;
      if (!(resumable(error) || raced) || attempt >= RESUME_ATTEMPTS) throw error;
      const upload = await unary(
        client.getBackupUpload.bind(client),
        { uploadId: created.uploadId },
        { metadata },
      );
      if (upload.complete && upload.version) return upload.version;
      offset = Number(upload.received);
    }
    if (attempt >= RESUME_ATTEMPTS) {
      throw new SottoError(`the upload stopped at ${offset} of ${size} bytes; try again`);
    }
  }
}

/** Writes one download stream to the file from `offset`; resolves with the version and the bytes written. */
function downloadFrom(
  client: BackupServiceClient,
  metadata: Metadata,
  version: string,
  offset: number,
  path: string,
  onData: (backup: BackupVersion | undefined, data: Uint8Array) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const file = createWriteStream(path, { flags: offset === 0 ? 'w' : 'r+', start: offset, mode: 0o600 });
    const call = client.downloadBackup({ version, offset: String(offset) }, metadata);
    let failed = false;
    // What was received is flushed before the failure is reported, so a resume starts at the file's end.
    const fail = (error: Error) => {
      if (failed) return;
      failed = true;
      call.cancel();
      file.end(() => reject(error));
    };
    call.on('data', (message: DownloadBackupResponse) => {
      onData(message.backup, message.data);
      if (!file.write(message.data)) {
        call.pause();
        file.once('drain', () => call.resume());
      }
    });
    call.on('error', fail);
    call.on('end', () => file.end());
    file.on('error', (error) => {
      call.cancel();
      reject(error);
    });
    file.on('finish', () => {
      if (!failed) resolve();
    });
  });
}

/**
 * Downloads the newest backup (or the given version) into `path`, resuming
 * a cut stream at the byte it reached, always of the same version, and checks
 * its SHA-256 against the one the server recorded at upload.
 */
export async function downloadBackupFile(options: {
  client: BackupServiceClient;
  metadata: Metadata;
  path: string;
  onProgress?: (progress: TransferProgress) => void;
}): Promise<BackupVersion> {
  let version: BackupVersion | undefined;
  let received = 0;
  // Hashed as it arrives; only a resume reads back what the file already holds.
  let digest = createHash('sha256');
  for (let attempt = 1; ; attempt++) {
    try {
      await downloadFrom(
        options.client,
        options.metadata,
        version?.version ?? '0',
        received,
        options.path,
        (backup, data) => {
          version ??= backup;
          received += data.length;
          digest.update(data);
          if (version) options.onProgress?.({ done: received, total: Number(version.size) });
        },
      );
      break;
    } catch (error) {
      if (!resumable(error) || attempt >= RESUME_ATTEMPTS) throw error;
      received = statSync(options.path).size;
      digest = createHash('sha256');
      for await (const chunk of createReadStream(options.path)) digest.update(chunk as Buffer);
    }
  }
  if (!version) throw new SottoError('the server sent no backup');
  if (received !== Number(version.size) || !digest.digest().equals(Buffer.from(version.sha256))) {
    throw new SottoError(`backup version ${version.version} arrived damaged (its SHA-256 does not match)`);
  }
  return version;
}
