import { createHash, randomInt } from 'node:crypto';
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { status, type Metadata, type ServiceError } from '@grpc/grpc-js';
import type { BackupVersion } from '@sotto/contracts/generated/sotto/common/v1/backup';
import type {
  BackupServiceClient,
  DownloadBackupResponse,
  UploadBackupResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { reasonOf, retryAfterOf, SottoError } from './errors';
import { unary } from './grpc';

/** How often a cut upload or download is resumed before giving up. */
const RESUME_ATTEMPTS = 5;

/** How long, in all, an upload keeps coming back to a busy store before it reports the refusal. */
export const BUSY_WAIT_LIMIT_MS = 5 * 60_000;
/** The first wait when the store names none; each busy answer in a row doubles it, up to the cap. */
const BUSY_FIRST_WAIT_MS = 1_000;
const BUSY_WAIT_CAP_MS = 30_000;

export interface TransferProgress {
  readonly done: number;
  readonly total: number;
}

/** The store was too busy to take the upload's bytes; it waits this long and resumes. */
export interface BusyWait {
  /** This wait, in milliseconds. */
  readonly waitMs: number;
  /** All waits of this upload so far, this one included. */
  readonly waitedMs: number;
  /** The server's words. */
  readonly message: string;
}

/**
 * A refusal that says the store, not this request, is out of room for now
 * (`busy`): the same upload gets in once the room frees.
 */
function busy(error: unknown): error is ServiceError {
  const failure = error as ServiceError;
  return failure.code === status.RESOURCE_EXHAUSTED && reasonOf(failure) === 'busy';
}

/**
 * How long to wait after the `inRow`-th busy answer in a row: never less than
 * the server's retry-after, doubling while the store stays busy, and up to
 * half again at random, so that uploads refused together do not all come back
 * together.
 */
export function busyWaitMs(retryAfterMs: number | undefined, inRow: number): number {
  const backoff = Math.min(BUSY_FIRST_WAIT_MS * 2 ** Math.min(inRow - 1, 16), BUSY_WAIT_CAP_MS);
  const base = Math.max(retryAfterMs ?? 0, backoff);
  return base + randomInt(Math.floor(base / 2) + 1);
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
    const file = createReadStream(path, { start: offset, highWaterMark: chunkSize });
    const call = client.uploadBackup(metadata, (error, response) => {
      // The answer can come while the file waits for room in the stream, which will never come now.
      file.destroy();
      if (error) reject(error);
      else resolve(response);
    });
    call.write({ start: { uploadId, offset: String(offset) } });
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
 * whenever a stream is cut, or after a wait when the store is too busy to take
 * it (for at most `busyWaitLimitMs` in all, BUSY_WAIT_LIMIT_MS by default).
 * Resolves with the version it became. Any other refusal, such as the
 * account's quota, is reported at once.
 */
export async function uploadBackupFile(options: {
  client: BackupServiceClient;
  metadata: Metadata;
  path: string;
  size: number;
  sha256: Uint8Array;
  onProgress?: (progress: TransferProgress) => void;
  onBusy?: (wait: BusyWait) => void;
  busyWaitLimitMs?: number;
}): Promise<BackupVersion> {
  const { client, metadata, path, size } = options;
  const busyWaitLimitMs = options.busyWaitLimitMs ?? BUSY_WAIT_LIMIT_MS;
  const created = await unary(
    client.createBackupUpload.bind(client),
    { size: String(size), sha256: Buffer.from(options.sha256) },
    { metadata },
  );
  let offset = 0;
  // Streams that were cut, which RESUME_ATTEMPTS bounds; busy answers are bounded by the total wait.
  let cuts = 0;
  let busyInRow = 0;
  let busyWaitedMs = 0;
  for (;;) {
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
      cuts++;
    } catch (error) {
      if (busy(error)) {
        // Not a cut: the store kept what it stored, and takes the rest once it has room.
        busyInRow++;
        const waitMs = busyWaitMs(retryAfterOf(error), busyInRow);
        if (busyWaitedMs + waitMs > busyWaitLimitMs) throw error;
        busyWaitedMs += waitMs;
        options.onBusy?.({ waitMs, waitedMs: busyWaitedMs, message: error.details });
        await sleep(waitMs);
      } else {
        // A resume can race the cut stream's last write: the store then names the offset it holds.
        const raced = offset > 0 && (error as ServiceError).code === status.FAILED_PRECONDITION;
        cuts++;
        if (!(resumable(error) || raced) || cuts >= RESUME_ATTEMPTS) throw error;
      }
      const upload = await unary(
        client.getBackupUpload.bind(client),
        { uploadId: created.uploadId },
        { metadata },
      );
      if (upload.complete && upload.version) return upload.version;
      // Progress since the last busy answer: the store is taking bytes again.
      if (Number(upload.received) > offset) busyInRow = 0;
      offset = Number(upload.received);
    }
    if (cuts >= RESUME_ATTEMPTS) {
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
