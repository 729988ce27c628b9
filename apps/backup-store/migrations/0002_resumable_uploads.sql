-- Resumable uploads, version numbering, quota serialization and blob cleanup.
-- Keyed by account id first, like every table, to shard by account.

-- One row per account that ever uploaded: locked to serialize quota checks
-- and version numbering of that account, portably (no advisory locks).
CREATE TABLE accounts (
  account_id uuid PRIMARY KEY,
  next_version bigint NOT NULL DEFAULT 1
);

ALTER TABLE uploads
  -- The blob store's handle of the resumable write (S3's multipart upload id).
  ADD COLUMN multipart_id text,
  -- The stream now appending; a newer stream takes over, and the older one's
  -- writes are no longer recorded.
  ADD COLUMN writer uuid,
  -- Set when the upload became this version; until then it holds a quota reservation.
  ADD COLUMN version bigint;

-- Expired uploads are found by age, across accounts, by the sweeper.
CREATE INDEX uploads_updated_at ON uploads (updated_at);

-- Parts of a multipart blob stored so far, in order; recorded with `received`.
CREATE TABLE upload_parts (
  account_id uuid NOT NULL,
  upload_id uuid NOT NULL,
  part_number integer NOT NULL CHECK (part_number > 0),
  etag text NOT NULL,
  PRIMARY KEY (account_id, upload_id, part_number),
  FOREIGN KEY (account_id, upload_id) REFERENCES uploads (account_id, upload_id) ON DELETE CASCADE
);

-- Blobs whose metadata is gone (pruned versions, cancelled or expired
-- uploads). Written in the transaction that dooms them, deleted from storage
-- after it commits, and retried by the sweeper until storage confirms.
CREATE TABLE doomed_blobs (
  account_id uuid NOT NULL,
  blob_key text NOT NULL,
  multipart_id text,
  doomed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (account_id, blob_key)
);
