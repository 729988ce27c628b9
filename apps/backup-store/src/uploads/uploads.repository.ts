import { Inject, Injectable } from '@nestjs/common';
import { PG_POOL, type Pool, type PoolClient } from '@sotto/platform/postgres';
import type { Checkpoint, PendingBlob, StoredPart } from '../blobs/blob-store';
import { BACKUP_POLICY, type BackupPolicy } from '../env';
import { inTransaction } from '../transaction';
import type { AccountId, UploadId } from '../validation';

export interface UploadRecord {
  readonly uploadId: UploadId;
  readonly size: number;
  readonly sha256: Uint8Array;
  /** Bytes stored durably, from the start of the blob. */
  readonly received: number;
  readonly blob: PendingBlob;
  /** Parts of the blob stored so far (multipart stores). */
  readonly parts: number;
  /** The version it became, once complete. */
  readonly version: number | null;
  /** Last stored bytes, or completion. */
  readonly updatedAt: Date;
}

/** Uploads in progress of one account: what they reserve of its quota. */
export interface Reservations {
  readonly uploads: number;
  readonly bytes: number;
}

interface UploadRow {
  upload_id: UploadId;
  size: string;
  sha256: Buffer;
  received: string;
  blob_key: string;
  multipart_id: string | null;
  version: string | null;
  updated_at: Date;
  parts: string;
}

const COLUMNS = `upload_id, size, sha256, received, blob_key, multipart_id, version, updated_at,
  (SELECT count(*) FROM upload_parts p
    WHERE p.account_id = uploads.account_id AND p.upload_id = uploads.upload_id) AS parts`;

function toRecord(row: UploadRow): UploadRecord {
  return {
    uploadId: row.upload_id,
    size: Number(row.size),
    sha256: row.sha256,
    received: Number(row.received),
    blob: { key: row.blob_key, multipartId: row.multipart_id },
    parts: Number(row.parts),
    version: row.version === null ? null : Number(row.version),
    updatedAt: row.updated_at,
  };
}

/** The account's row locked: quota checks and inserts of that account run one at a time. */
export interface LockedAccount {
  reservations(): Promise<Reservations>;
  insert(upload: {
    uploadId: UploadId;
    size: number;
    sha256: Uint8Array;
    blob: PendingBlob;
  }): Promise<UploadRecord>;
}

/**
 * Uploads and their stored parts in PostgreSQL. Every query names its
 * account. An upload with no stored bytes for longer than the expiry is
 * treated as gone before the sweeper deletes it.
 */
@Injectable()
export class UploadsRepository {
  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(BACKUP_POLICY) private readonly policy: BackupPolicy,
  ) {}

  /** Runs `work` in one transaction holding the account's lock. */
  withAccountLocked<T>(accountId: AccountId, work: (account: LockedAccount) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, async (client) => {
      // The upsert takes the row lock, for new and known accounts alike.
      await client.query(
        `INSERT INTO accounts (account_id) VALUES ($1)
         ON CONFLICT (account_id) DO UPDATE SET account_id = EXCLUDED.account_id`,
        [accountId],
      );
      return work(this.lockedAccount(client, accountId));
    });
  }

  private lockedAccount(client: PoolClient, accountId: AccountId): LockedAccount {
    return {
      reservations: async () => {
        const { rows } = await client.query<{ uploads: string; bytes: string }>(
          `SELECT count(*) AS uploads, coalesce(sum(size), 0) AS bytes FROM uploads
           WHERE account_id = $1 AND version IS NULL AND updated_at > now() - make_interval(secs => $2)`,
          [accountId, this.policy.uploadExpirySeconds],
        );
        return { uploads: Number(rows[0].uploads), bytes: Number(rows[0].bytes) };
      },
      insert: async (upload) => {
        const { rows } = await client.query<UploadRow>(
          `INSERT INTO uploads (account_id, upload_id, size, sha256, blob_key, multipart_id)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
          [accountId, upload.uploadId, upload.size, upload.sha256, upload.blob.key, upload.blob.multipartId],
        );
        return toRecord(rows[0]);
      },
    };
  }

  async find(accountId: AccountId, uploadId: UploadId): Promise<UploadRecord | undefined> {
    const { rows } = await this.pool.query<UploadRow>(
      `SELECT ${COLUMNS} FROM uploads
       WHERE account_id = $1 AND upload_id = $2 AND updated_at > now() - make_interval(secs => $3)`,
      [accountId, uploadId, this.policy.uploadExpirySeconds],
    );
    return rows[0] && toRecord(rows[0]);
  }

  /** The account's uploads in progress, oldest first. */
  async inProgress(accountId: AccountId): Promise<UploadRecord[]> {
    const { rows } = await this.pool.query<UploadRow>(
      `SELECT ${COLUMNS} FROM uploads
       WHERE account_id = $1 AND version IS NULL AND updated_at > now() - make_interval(secs => $2)
       ORDER BY created_at, upload_id`,
      [accountId, this.policy.uploadExpirySeconds],
    );
    return rows.map(toRecord);
  }

  /**
   * Makes `writer` the one stream whose checkpoints count, if the upload is
   * in progress and holds exactly `offset` bytes; undefined otherwise.
   */
  async claim(
    accountId: AccountId,
    uploadId: UploadId,
    offset: number,
    writer: string,
  ): Promise<UploadRecord | undefined> {
    const { rows } = await this.pool.query<UploadRow>(
      `UPDATE uploads SET writer = $4, updated_at = now()
       WHERE account_id = $1 AND upload_id = $2 AND version IS NULL AND received = $3
         AND updated_at > now() - make_interval(secs => $5)
       RETURNING ${COLUMNS}`,
      [accountId, uploadId, offset, writer, this.policy.uploadExpirySeconds],
    );
    return rows[0] && toRecord(rows[0]);
  }

  /**
   * Records durably stored bytes (and the part that holds them), if `writer`
   * still holds the upload. False when a newer stream took it over, or the
   * upload is gone.
   */
  async record(
    accountId: AccountId,
    uploadId: UploadId,
    writer: string,
    checkpoint: Checkpoint,
  ): Promise<boolean> {
    const claimed = `UPDATE uploads SET received = $4, updated_at = now()
      WHERE account_id = $1 AND upload_id = $2 AND writer = $3 AND version IS NULL`;
    const values: unknown[] = [accountId, uploadId, writer, checkpoint.received];
    if (!checkpoint.part) return ((await this.pool.query(claimed, values)).rowCount ?? 0) > 0;
    // One statement: the part and the count it brings are recorded together or not at all.
    const { rowCount } = await this.pool.query(
      `WITH claimed AS (${claimed} RETURNING account_id, upload_id)
       INSERT INTO upload_parts (account_id, upload_id, part_number, etag)
       SELECT account_id, upload_id, $5, $6 FROM claimed
       ON CONFLICT (account_id, upload_id, part_number) DO UPDATE SET etag = EXCLUDED.etag`,
      [...values, checkpoint.part.number, checkpoint.part.etag],
    );
    return (rowCount ?? 0) > 0;
  }

  async parts(accountId: AccountId, uploadId: UploadId): Promise<StoredPart[]> {
    const { rows } = await this.pool.query<{ part_number: number; etag: string }>(
      'SELECT part_number, etag FROM upload_parts WHERE account_id = $1 AND upload_id = $2 ORDER BY part_number',
      [accountId, uploadId],
    );
    return rows.map((row) => ({ number: row.part_number, etag: row.etag }));
  }

  /**
   * Deletes an upload in progress and dooms its blob, in one statement; the
   * blob to remove, or undefined if there was no such upload in progress.
   */
  async discard(accountId: AccountId, uploadId: UploadId): Promise<PendingBlob | undefined> {
    const { rows } = await this.pool.query<{ blob_key: string; multipart_id: string | null }>(
      `WITH gone AS (
         DELETE FROM uploads WHERE account_id = $1 AND upload_id = $2 AND version IS NULL
         RETURNING account_id, blob_key, multipart_id)
       INSERT INTO doomed_blobs (account_id, blob_key, multipart_id)
       SELECT account_id, blob_key, multipart_id FROM gone
       ON CONFLICT (account_id, blob_key) DO UPDATE SET multipart_id = EXCLUDED.multipart_id
       RETURNING blob_key, multipart_id`,
      [accountId, uploadId],
    );
    return rows[0] && { key: rows[0].blob_key, multipartId: rows[0].multipart_id };
  }
}
