import { constants, createReadStream } from 'node:fs';
import { access, mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  BlobMissingError,
  type BlobStore,
  type BlobWriter,
  type Checkpoint,
  type PendingBlob,
} from './blob-store';

/** A blob being written is `<key>.part`; it takes its key's name only once whole. */
const PENDING_SUFFIX = '.part';
/** How many bytes are written between two fsyncs: what a crash may cost a resuming client. */
export const SYNC_EVERY_BYTES = 8 * 1024 * 1024;

/** fsync a directory, so that a file created or renamed in it survives a crash. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Blobs as files in one local directory, for a single machine. Bytes count
 * as received only once fsynced, and a blob appears under its key by an
 * atomic rename of the fsynced whole, so a crash never leaves a half-written
 * version behind.
 */
export class LocalBlobStore implements BlobStore {
  constructor(private readonly dir: string) {}

  /** Creates the directory if missing; resolves once it is readable and writable. */
  async prepare(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await this.check();
  }

  private file(key: string): string {
    return join(this.dir, key);
  }

  async begin(key: string): Promise<PendingBlob> {
    const pending = this.file(key) + PENDING_SUFFIX;
    // An account's first blob creates its directory, whose entry must be durable too.
    if (await mkdir(dirname(pending), { recursive: true, mode: 0o700 })) await syncDirectory(this.dir);
    const handle = await open(pending, 'w', 0o600);
    await handle.close();
    await syncDirectory(dirname(pending));
    return { key, multipartId: null };
  }

  append(blob: PendingBlob, position: { received: number; size: number }): BlobWriter {
    return new LocalBlobWriter(this.file(blob.key) + PENDING_SUFFIX, position.received, position.size);
  }

  async finish(blob: PendingBlob): Promise<void> {
    const final = this.file(blob.key);
    let handle: FileHandle;
    try {
      handle = await open(final + PENDING_SUFFIX, 'r+');
    } catch (error) {
      // Finished before, by a completion that did not get to record it.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && (await exists(final))) return;
      throw error;
    }
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(final + PENDING_SUFFIX, final);
    await syncDirectory(dirname(final));
  }

  async *read(key: string, offset: number, chunkBytes: number): AsyncIterable<Uint8Array> {
    // The stream reads the next chunk only when this one was taken: memory stays at one chunk.
    const stream = createReadStream(this.file(key), { start: offset, highWaterMark: chunkBytes });
    try {
      for await (const chunk of stream) yield chunk as Buffer;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new BlobMissingError(key);
      throw error;
    } finally {
      stream.destroy();
    }
  }

  async remove(blob: PendingBlob): Promise<void> {
    await rm(this.file(blob.key), { force: true });
    await rm(this.file(blob.key) + PENDING_SUFFIX, { force: true });
  }

  check(): Promise<void> {
    return access(this.dir, constants.W_OK | constants.R_OK);
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

class LocalBlobWriter implements BlobWriter {
  private handle: Promise<FileHandle> | undefined;
  private position: number;
  private synced: number;

  constructor(
    private readonly path: string,
    received: number,
    private readonly size: number,
  ) {
    this.position = received;
    this.synced = received;
  }

  /** Opens the pending file and drops whatever a cut stream wrote past the recorded count. */
  private open(): Promise<FileHandle> {
    this.handle ??= open(this.path, 'r+').then(async (handle) => {
      await handle.truncate(this.position);
      return handle;
    });
    return this.handle;
  }

  async write(bytes: Uint8Array): Promise<Checkpoint | undefined> {
    const handle = await this.open();
    let written = 0;
    while (written < bytes.length) {
      const { bytesWritten } = await handle.write(
        bytes,
        written,
        bytes.length - written,
        this.position + written,
      );
      written += bytesWritten;
    }
    this.position += bytes.length;
    if (this.position - this.synced >= SYNC_EVERY_BYTES || this.position === this.size) {
      return this.sync(handle);
    }
    return undefined;
  }

  private async sync(handle: FileHandle): Promise<Checkpoint> {
    await handle.datasync();
    this.synced = this.position;
    return { received: this.synced };
  }

  async close(): Promise<Checkpoint | undefined> {
    // A writer that never opened its file (it was missing) has nothing to make durable.
    const handle = await this.handle?.catch(() => undefined);
    if (!handle) return undefined;
    try {
      return this.position > this.synced ? await this.sync(handle) : undefined;
    } finally {
      await handle.close();
    }
  }
}
