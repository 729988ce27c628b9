import { Inject, Injectable } from '@nestjs/common';
import { PeriodicTask } from '@sotto/platform/periodic';
import { PG_POOL, type Pool } from '@sotto/platform/postgres';
import { BACKUP_POLICY, type BackupPolicy } from '../env';
import { DoomedBlobs } from './doomed-blobs';

export const SWEEP_INTERVAL_MS = Symbol('SWEEP_INTERVAL_MS');

const BATCH = 1000;

/**
 * Now and then, on every replica: deletes uploads that received nothing for
 * longer than the expiry (dooming the blobs of those in progress), then
 * removes doomed blobs.
 */
@Injectable()
export class Sweeper extends PeriodicTask {
  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(BACKUP_POLICY) private readonly policy: BackupPolicy,
    @Inject(SWEEP_INTERVAL_MS) intervalMs: number,
    private readonly doomed: DoomedBlobs,
  ) {
    super(Sweeper.name, intervalMs);
  }

  protected async run(): Promise<void> {
    const expired = await this.expireUploads();
    const removed = await this.doomed.removeBacklog();
    if (expired > 0 || removed > 0) this.logger.log(`expired ${expired} uploads, removed ${removed} blobs`);
  }

  /** Deletes expired uploads, a batch per statement; in-progress ones doom their blob in the same statement. */
  private async expireUploads(): Promise<number> {
    let expired = 0;
    for (;;) {
      const { rows } = await this.pool.query<{ count: string }>(
        `WITH gone AS (
           DELETE FROM uploads WHERE (account_id, upload_id) IN (
             SELECT account_id, upload_id FROM uploads
             WHERE updated_at <= now() - make_interval(secs => $1)
             LIMIT $2 FOR UPDATE SKIP LOCKED)
           RETURNING account_id, blob_key, multipart_id, version),
         doomed AS (
           INSERT INTO doomed_blobs (account_id, blob_key, multipart_id)
           SELECT account_id, blob_key, multipart_id FROM gone WHERE version IS NULL
           ON CONFLICT (account_id, blob_key) DO NOTHING)
         SELECT count(*) FROM gone`,
        [this.policy.uploadExpirySeconds, BATCH],
      );
      const count = Number(rows[0].count);
      expired += count;
      if (count < BATCH) return expired;
    }
  }
}
