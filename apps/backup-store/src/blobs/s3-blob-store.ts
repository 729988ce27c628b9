import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import type { S3Location } from '../env';
import type { BufferBudget, Reservation } from './buffer-budget';
import {
  BlobMissingError,
  type BlobStore,
  type BlobWriter,
  type Checkpoint,
  type PendingBlob,
  type StoredPart,
} from './blob-store';

function isS3Error(error: unknown, ...names: string[]): boolean {
  return error instanceof S3ServiceException && names.includes(error.name);
}

export function createS3Client(settings: S3Location): S3Client {
  return new S3Client({
    region: settings.region,
    endpoint: settings.endpoint,
    forcePathStyle: settings.forcePathStyle,
    credentials: settings.credentials,
    // Integrity is the SHA-256 over the whole blob; per-request checksums add
    // CPU and are not understood by every S3-compatible server.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/**
 * Blobs in an S3-compatible bucket. A blob is written as a multipart upload,
 * whose parts are durable once S3 acknowledged them; it becomes an object,
 * all at once, when the upload is completed. S3 refuses parts under 5 MiB
 * except the last, so bytes are buffered to the part size, and only whole
 * stored parts count as received.
 *
 * Every part's buffer is reserved from `budget`, shared by all uploads of the
 * process, before its first byte is held: when the budget is used up, a
 * stream's next write waits (and so does the client, through gRPC flow
 * control) until another part is stored, and fails with
 * BufferBudgetExhaustedError after the budget's wait. Writes are at most
 * `maxWriteBytes`, so a part's buffer never holds more than
 * `partBufferBytes(partBytes, maxWriteBytes)`.
 */
export class S3BlobStore implements BlobStore {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    private readonly partBytes: number,
    private readonly budget: BufferBudget,
    private readonly maxWriteBytes: number,
  ) {
    if (budget.capacity < partBufferBytes(partBytes, maxWriteBytes)) {
      throw new RangeError(
        `the ${budget.what} of ${budget.capacity} bytes cannot hold one part's buffer of ${partBufferBytes(partBytes, maxWriteBytes)} bytes`,
      );
    }
  }

  async begin(key: string): Promise<PendingBlob> {
    const { UploadId } = await this.s3.send(
      new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key }),
    );
    if (!UploadId) throw new Error(`S3 gave no upload id for ${key}`);
    return { key, multipartId: UploadId };
  }

  append(
    blob: PendingBlob,
    position: { received: number; parts: number; size: number },
    signal?: AbortSignal,
  ): BlobWriter {
    return new S3PartWriter(this.s3, this.bucket, blob, position, {
      partBytes: this.partBytes,
      maxWriteBytes: this.maxWriteBytes,
      budget: this.budget,
      signal,
    });
  }

  async finish(blob: PendingBlob, parts: readonly StoredPart[]): Promise<void> {
    try {
      await this.s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: blob.key,
          UploadId: multipartId(blob),
          MultipartUpload: { Parts: parts.map((part) => ({ PartNumber: part.number, ETag: part.etag })) },
        }),
      );
    } catch (error) {
      // Finished before, by a completion that did not get to record it.
      if (isS3Error(error, 'NoSuchUpload') && (await this.exists(blob.key))) return;
      throw error;
    }
  }

  private async exists(key: string): Promise<boolean> {
    try {
      await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (error) {
      if (isS3Error(error, 'NotFound', 'NoSuchKey')) return false;
      throw error;
    }
  }

  async *read(key: string, offset: number, chunkBytes: number): AsyncIterable<Uint8Array> {
    let body: Readable | undefined;
    try {
      const { Body } = await this.s3.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Range: offset > 0 ? `bytes=${offset}-` : undefined,
        }),
      );
      body = Body as Readable | undefined;
    } catch (error) {
      if (isS3Error(error, 'NoSuchKey')) throw new BlobMissingError(key);
      throw error;
    }
    if (!body) throw new Error(`S3 returned no body for ${key}`);
    // HTTP hands over small pieces; gather them into chunks. The socket is read
    // only as fast as chunks are taken, so memory stays at about one chunk.
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    try {
      for await (const piece of body) {
        const bytes = piece as Buffer;
        pending.push(bytes);
        pendingBytes += bytes.length;
        while (pendingBytes >= chunkBytes) {
          const joined = Buffer.concat(pending, pendingBytes);
          yield joined.subarray(0, chunkBytes);
          pending = [joined.subarray(chunkBytes)];
          pendingBytes -= chunkBytes;
        }
      }
      if (pendingBytes > 0) yield Buffer.concat(pending, pendingBytes);
    } finally {
      body.destroy();
    }
  }

  async remove(blob: PendingBlob): Promise<void> {
    if (blob.multipartId !== null) {
      try {
        await this.s3.send(
          new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: blob.key, UploadId: blob.multipartId }),
        );
      } catch (error) {
        // Completed or aborted already: the object (if any) is deleted below.
        if (!isS3Error(error, 'NoSuchUpload')) throw error;
      }
    }
    await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: blob.key }));
  }

  async check(): Promise<void> {
    await this.s3.send(new HeadBucketCommand({ Bucket: this.bucket }));
  }
}

function multipartId(blob: PendingBlob): string {
  if (blob.multipartId === null) throw new Error(`blob ${blob.key} has no multipart upload`);
  return blob.multipartId;
}

/**
 * The most one part's buffer holds: a part is stored once it reaches
 * `partBytes`, so it is short of that by at least a byte before its last
 * write of at most `maxWriteBytes`.
 */
export function partBufferBytes(partBytes: number, maxWriteBytes: number): number {
  return partBytes - 1 + maxWriteBytes;
}

interface PartBuffering {
  readonly partBytes: number;
  readonly maxWriteBytes: number;
  readonly budget: BufferBudget;
  /** Aborts a wait for budget: the stream was cancelled or taken over. */
  readonly signal: AbortSignal | undefined;
}

class S3PartWriter implements BlobWriter {
  private buffered: Uint8Array[] = [];
  private bufferedBytes = 0;
  /** The budget held for the part being buffered; none between parts. */
  private reservation: Reservation | undefined;
  private received: number;
  private nextPart: number;
  private readonly size: number;

  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    private readonly blob: PendingBlob,
    position: { received: number; parts: number; size: number },
    private readonly buffering: PartBuffering,
  ) {
    this.received = position.received;
    this.nextPart = position.parts + 1;
    this.size = position.size;
  }

  private get atEnd(): boolean {
    return this.received + this.bufferedBytes === this.size;
  }

  async write(bytes: Uint8Array): Promise<Checkpoint | undefined> {
    const { partBytes, maxWriteBytes, budget, signal } = this.buffering;
    if (bytes.length > maxWriteBytes) {
      throw new RangeError(`a write of ${bytes.length} bytes is over the most of ${maxWriteBytes}`);
    }
    // The part's buffer, reserved before it holds anything: all of it, or
    // what is left of the blob when that is less.
    this.reservation ??= await budget.reserve(
      Math.max(1, Math.min(partBufferBytes(partBytes, maxWriteBytes), this.size - this.received)),
      signal,
    );
    this.buffered.push(bytes);
    this.bufferedBytes += bytes.length;
    if (this.bufferedBytes >= partBytes || this.atEnd) return this.storePart();
    return undefined;
  }

  private async storePart(): Promise<Checkpoint> {
    try {
      const body = Buffer.concat(this.buffered, this.bufferedBytes);
      this.buffered = [];
      this.bufferedBytes = 0;
      const number = this.nextPart;
      const { ETag } = await this.s3.send(
        new UploadPartCommand({
          Bucket: this.bucket,
          Key: this.blob.key,
          UploadId: multipartId(this.blob),
          PartNumber: number,
          Body: body,
          ContentLength: body.length,
        }),
      );
      if (!ETag) throw new Error(`S3 gave no ETag for part ${number} of ${this.blob.key}`);
      this.nextPart += 1;
      this.received += body.length;
      return { received: this.received, part: { number, etag: ETag } };
    } finally {
      // Stored or failed, the part's bytes are no longer held.
      this.releaseBuffer();
    }
  }

  async close(): Promise<Checkpoint | undefined> {
    if (this.bufferedBytes > 0 && this.atEnd) return this.storePart();
    this.releaseBuffer();
    return undefined;
  }

  private releaseBuffer(): void {
    this.buffered = [];
    this.bufferedBytes = 0;
    this.reservation?.release();
    this.reservation = undefined;
  }
}
