import { S3Client } from '@aws-sdk/client-s3';
import { freePort } from '@sotto/testing';
import { BufferBudget } from './buffer-budget';
import { S3BlobStore, partBufferBytes } from './s3-blob-store';

const MIB = 1024 * 1024;
const PART = 5 * MIB;

/** A store whose S3 endpoint answers nothing: every part it tries to store fails. */
async function unreachableStore(budget: BufferBudget): Promise<{ store: S3BlobStore; s3: S3Client }> {
  const s3 = new S3Client({
    region: 'us-east-1',
    endpoint: `http://127.0.0.1:${await freePort()}`,
    forcePathStyle: true,
    credentials: { accessKeyId: 'sotto-test', secretAccessKey: 'sotto-test-secret' },
    maxAttempts: 1,
  });
  return { store: new S3BlobStore(s3, 'sotto-backups', PART, budget, MIB), s3 };
}

const blob = { key: 'account/upload', multipartId: 'upload-id' };

describe('S3BlobStore with a buffer budget', () => {
  it('refuses a budget smaller than one part buffer', async () => {
    const budget = new BufferBudget('S3 upload buffer', partBufferBytes(PART, MIB) - 1, 1_000);
    await expect(unreachableStore(budget)).rejects.toThrow(
      `the S3 upload buffer of ${PART + MIB - 2} bytes cannot hold one part's buffer of ${PART + MIB - 1} bytes`,
    );
  });

  it('gives back the reservation of a part that S3 failed to store', async () => {
    const budget = new BufferBudget('S3 upload buffer', partBufferBytes(PART, MIB), 1_000);
    const { store, s3 } = await unreachableStore(budget);
    try {
      const writer = store.append(blob, { received: 0, parts: 0, size: 3 * PART });
      for (let written = 0; written < PART - MIB; written += MIB) {
        expect(await writer.write(Buffer.alloc(MIB))).toBeUndefined();
      }
      expect(budget.used).toBe(partBufferBytes(PART, MIB));
      // The write that completes the part sends it, and S3 is not there.
      await expect(writer.write(Buffer.alloc(MIB))).rejects.toThrow();
      expect(budget.used).toBe(0);
      expect(await writer.close()).toBeUndefined();
      expect(budget.used).toBe(0);
    } finally {
      s3.destroy();
    }
  });

  it('reserves only what is left of a blob shorter than a part, and frees it when the stream ends early', async () => {
    const budget = new BufferBudget('S3 upload buffer', partBufferBytes(PART, MIB), 1_000);
    const { store, s3 } = await unreachableStore(budget);
    try {
      const writer = store.append(blob, { received: PART, parts: 1, size: PART + 3 * MIB });
      await writer.write(Buffer.alloc(MIB));
      expect(budget.used).toBe(3 * MIB);
      // The client went away before the last byte: nothing to store, the buffer is dropped.
      expect(await writer.close()).toBeUndefined();
      expect(budget.used).toBe(0);
    } finally {
      s3.destroy();
    }
  });

  it('refuses a write over the most one write may add, reserving nothing', async () => {
    const budget = new BufferBudget('S3 upload buffer', partBufferBytes(PART, MIB), 1_000);
    const { store, s3 } = await unreachableStore(budget);
    try {
      const writer = store.append(blob, { received: 0, parts: 0, size: 3 * PART });
      await expect(writer.write(Buffer.alloc(MIB + 1))).rejects.toThrow(
        `a write of ${MIB + 1} bytes is over the most of ${MIB}`,
      );
      expect(budget.used).toBe(0);
    } finally {
      s3.destroy();
    }
  });

  it('stops a write waiting for room when its stream is cancelled, buffering nothing', async () => {
    const budget = new BufferBudget('S3 upload buffer', partBufferBytes(PART, MIB), 60_000);
    const { store, s3 } = await unreachableStore(budget);
    try {
      const held = await budget.reserve(budget.capacity);
      const cancelled = new AbortController();
      const writer = store.append(blob, { received: 0, parts: 0, size: 3 * PART }, cancelled.signal);
      const waiting = writer.write(Buffer.alloc(MIB));
      expect(budget.waiting).toBe(1);
      cancelled.abort();
      await expect(waiting).rejects.toThrow('the wait for room in the S3 upload buffer was cancelled');
      expect(await writer.close()).toBeUndefined();
      held.release();
      expect(budget.used).toBe(0);
    } finally {
      s3.destroy();
    }
  });
});
