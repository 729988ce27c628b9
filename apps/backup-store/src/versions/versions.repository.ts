import { Inject, Injectable } from '@nestjs/common';
import { PG_POOL, type Pool } from '@sotto/platform/postgres';
import type { PendingBlob } from '../blobs/blob-store';
import { inTransaction } from '../transaction';
import type { AccountId, UploadId } from '../validation';

export interface VersionRecord {
  readonly version: number;
  readonly size: number;
  readonly sha256: Uint8Array;
  readonly blobKey: string;
  readonly createdAt: Date;
}

interface VersionRow {
  version: string;
  size: string;
  sha256: Buffer;
  blob_key: string;
  created_at: Date;
}

const COLUMNS = 'version, size, sha256, blob_key, created_at';

function toRecord(row: VersionRow): VersionRecord {
  return {
    version: Number(row.version),
    size: Number(row.size),
    sha256: row.sha256,
    blobKey: row.blob_key,
    createdAt: row.created_at,
  };
}

/** Completed backups of each account in PostgreSQL; every query names its account. */
@Injectable()
export class VersionsRepository {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  /**
   * Turns a fully received upload into the account's newest version and
   * prunes older versions beyond `keep`, or beyond `quotaBytes` together
   * (the newest always stays), all in one transaction. The pruned versions'
   * blobs are doomed in the same transaction, to be removed once it commits.
   * Undefined when the upload is not waiting to complete (another stream
   * completed it, or it is gone).
   */
  commit(
    accountId: AccountId,
    uploadId: UploadId,
    limits: { keep: number; quotaBytes: number },
  ): Promise<{ version: VersionRecord; doomed: PendingBlob[] } | undefined> {
    return inTransaction(this.pool, async (client) => {
      // The account row lock orders completions, so version numbers follow completion order.
      const { rows: accounts } = await client.query<{ next_version: string }>(
        'SELECT next_version FROM accounts WHERE account_id = $1 FOR UPDATE',
        [accountId],
      );
      if (accounts.length === 0) return undefined;
      const version = accounts[0].next_version;
      const { rows: uploads } = await client.query<{ size: string; sha256: Buffer; blob_key: string }>(
        `UPDATE uploads SET version = $3, updated_at = now()
         WHERE account_id = $1 AND upload_id = $2 AND version IS NULL AND received = size
         RETURNING size, sha256, blob_key`,
        [accountId, uploadId, version],
      );
      if (uploads.length === 0) return undefined;
      const { rows: inserted } = await client.query<VersionRow>(
        `INSERT INTO versions (account_id, version, size, sha256, blob_key)
         VALUES ($1, $2, $3, $4, $5) RETURNING ${COLUMNS}`,
        [accountId, version, uploads[0].size, uploads[0].sha256, uploads[0].blob_key],
      );
      await client.query('UPDATE accounts SET next_version = next_version + 1 WHERE account_id = $1', [
        accountId,
      ]);
      const { rows: doomed } = await client.query<{ blob_key: string }>(
        `WITH ranked AS (
           SELECT version, row_number() OVER newest_first AS rank, sum(size) OVER newest_first AS total
           FROM versions WHERE account_id = $1
           WINDOW newest_first AS (ORDER BY version DESC)),
         pruned AS (
           DELETE FROM versions v USING ranked r
           WHERE v.account_id = $1 AND v.version = r.version AND r.rank > 1 AND (r.rank > $2 OR r.total > $3)
           RETURNING v.account_id, v.blob_key)
         INSERT INTO doomed_blobs (account_id, blob_key)
         SELECT account_id, blob_key FROM pruned
         ON CONFLICT (account_id, blob_key) DO NOTHING
         RETURNING blob_key`,
        [accountId, limits.keep, limits.quotaBytes],
      );
      return {
        version: toRecord(inserted[0]),
        doomed: doomed.map((row) => ({ key: row.blob_key, multipartId: null })),
      };
    });
  }

  /** Newest first. */
  async list(accountId: AccountId): Promise<VersionRecord[]> {
    const { rows } = await this.pool.query<VersionRow>(
      `SELECT ${COLUMNS} FROM versions WHERE account_id = $1 ORDER BY version DESC`,
      [accountId],
    );
    return rows.map(toRecord);
  }

  /** One version, or the newest when `version` is undefined. */
  async find(accountId: AccountId, version: number | undefined): Promise<VersionRecord | undefined> {
    const { rows } =
      version === undefined
        ? await this.pool.query<VersionRow>(
            `SELECT ${COLUMNS} FROM versions WHERE account_id = $1 ORDER BY version DESC LIMIT 1`,
            [accountId],
          )
        : await this.pool.query<VersionRow>(
            `SELECT ${COLUMNS} FROM versions WHERE account_id = $1 AND version = $2`,
            [accountId, version],
          );
    return rows[0] && toRecord(rows[0]);
  }
}
