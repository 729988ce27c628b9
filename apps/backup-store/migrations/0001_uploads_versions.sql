-- Metadata of encrypted backup blobs. The blobs themselves live in object
-- storage (a local directory by default) under their blob_key.

CREATE TABLE uploads (
  account_id uuid NOT NULL,
  upload_id uuid NOT NULL,
  size bigint NOT NULL CHECK (size > 0),
  sha256 bytea NOT NULL CHECK (length(sha256) = 32),
  received bigint NOT NULL DEFAULT 0 CHECK (received >= 0 AND received <= size),
  blob_key text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (account_id, upload_id)
);

CREATE TABLE versions (
  account_id uuid NOT NULL,
  version bigint NOT NULL CHECK (version > 0),
  size bigint NOT NULL,
  sha256 bytea NOT NULL,
  blob_key text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (account_id, version)
);
