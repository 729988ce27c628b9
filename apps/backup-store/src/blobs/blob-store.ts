/**
 * Where blob bytes live: a local directory or an S3-compatible bucket. The
 * metadata in PostgreSQL is the truth about what exists; a store only keeps
 * bytes under keys it is given, and never reports bytes as stored before
 * they would survive a crash.
 */
export interface BlobStore {
  /** Starts a resumable write of a new blob under `key`. */
  begin(key: string): Promise<PendingBlob>;
  /**
   * Appends to a pending blob from `received`, the durable count recorded in
   * the metadata; anything the store holds past it is overwritten. `parts` is
   * how many parts were recorded so far. `signal` aborts a write that waits
   * for buffer room (BufferWaitCancelledError): the stream is gone.
   */
  append(
    blob: PendingBlob,
    position: { received: number; parts: number; size: number },
    signal?: AbortSignal,
  ): BlobWriter;
  /**
   * Makes a whole pending blob readable under its key, all at once: a reader
   * never sees part of it. Finishing a blob that was already finished is fine.
   */
  finish(blob: PendingBlob, parts: readonly StoredPart[]): Promise<void>;
  /** A finished blob's bytes from `offset` on, in chunks of at most `chunkBytes`, read as they are consumed. */
  read(key: string, offset: number, chunkBytes: number): AsyncIterable<Uint8Array>;
  /** Removes a blob, pending or finished, and whatever was stored of it. Missing is not an error. */
  remove(blob: PendingBlob): Promise<void>;
  /** Resolves when the store answers; for readiness. */
  check(): Promise<void>;
}

export const BLOB_STORE = Symbol('BLOB_STORE');

export interface PendingBlob {
  readonly key: string;
  /** The store's handle of a resumable write (S3's multipart upload id); null on local disk. */
  readonly multipartId: string | null;
}

/** A stored part of a multipart blob, recorded in the metadata so the blob can be assembled. */
export interface StoredPart {
  readonly number: number;
  readonly etag: string;
}

/** Bytes that became durable: the metadata records them before the client is told. */
export interface Checkpoint {
  /** Bytes of the blob durably stored, from its start. */
  readonly received: number;
  /** The part stored to reach `received`, if the store works in parts. */
  readonly part?: StoredPart;
}

export interface BlobWriter {
  /**
   * Takes the next bytes. Resolves when the writer is ready for more, with a
   * checkpoint when these bytes made more of the blob durable. May wait for
   * room in a buffer budget, and fail with BufferBudgetExhaustedError when
   * none comes free in time; what was stored before stays stored.
   */
  write(bytes: Uint8Array): Promise<Checkpoint | undefined>;
  /**
   * Makes durable what can be, and releases the writer. Bytes that cannot be
   * stored yet (less than a part, before the end of the blob) are dropped:
   * they were never reported as received.
   */
  close(): Promise<Checkpoint | undefined>;
}

/** A blob the metadata named is not in the store: a version pruned while it was being read. */
export class BlobMissingError extends Error {
  constructor(readonly key: string) {
    super(`blob ${key} is not in the store`);
    this.name = 'BlobMissingError';
  }
}
