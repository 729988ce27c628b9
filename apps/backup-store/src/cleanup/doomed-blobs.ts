import { Inject, Injectable, Logger } from '@nestjs/common';
import type { AccountId } from '@sotto/platform/ids';
import { inTransaction, PG_POOL, type Pool } from '@sotto/platform/postgres';
import { BLOB_STORE, type BlobStore, type PendingBlob } from '../blobs/blob-store';

const BATCH = 100;

/**
 * Removes blobs whose metadata is gone. A blob is doomed in the transaction
 * that drops its metadata and removed from storage only after that commits,
 * so a version is never deleted while it is still listed; if removal fails
 * or the process dies, the row stays and the sweeper tries again.
 */
@Injectable()
export class DoomedBlobs {
  private readonly logger = new Logger(DoomedBlobs.name);

  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(BLOB_STORE) private readonly blobs: BlobStore,
  ) {}

  /** Removes blobs doomed by a transaction that just committed; failures are left to the sweeper. */
  async removeNow(accountId: AccountId, doomed: readonly PendingBlob[]): Promise<void> {
    for (const blob of doomed) {
      try {
        await this.blobs.remove(blob);
        await this.pool.query('DELETE FROM doomed_blobs WHERE account_id = $1 AND blob_key = $2', [
          accountId,
          blob.key,
        ]);
      } catch (error) {
        this.logger.warn(`could not remove blob ${blob.key} yet: ${(error as Error).message}`);
      }
    }
  }

  /** Removes every doomed blob it can, a batch at a time; replicas share the work. */
  async removeBacklog(): Promise<number> {
    let removed = 0;
    for (;;) {
      const batch = await inTransaction(this.pool, async (client) => {
        const { rows } = await client.query<{
          account_id: AccountId;
          blob_key: string;
          multipart_id: string | null;
        }>(
          `SELECT account_id, blob_key, multipart_id FROM doomed_blobs
           ORDER BY doomed_at LIMIT $1 FOR UPDATE SKIP LOCKED`,
          [BATCH],
        );
        let done = 0;
        for (const row of rows) {
          try {
            await this.blobs.remove({ key: row.blob_key, multipartId: row.multipart_id });
          } catch (error) {
            this.logger.warn(`could not remove blob ${row.blob_key} yet: ${(error as Error).message}`);
            continue;
          }
          await client.query('DELETE FROM doomed_blobs WHERE account_id = $1 AND blob_key = $2', [
            row.account_id,
            row.blob_key,
          ]);
          done += 1;
        }
        return { seen: rows.length, done };
      });
      removed += batch.done;
      // A short batch is the end; a batch with failures is retried on the next sweep, not now.
      if (batch.seen < BATCH || batch.done < batch.seen) return removed;
    }
  }
}
