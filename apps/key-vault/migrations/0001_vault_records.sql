-- One OPAQUE record per account, with the recovery key sealed under the
-- OPAQUE export key. The guess counter sits in the same row so that
-- "count the attempt, refuse past the limit" is one atomic UPDATE.

CREATE TABLE vault_records (
  account_id uuid PRIMARY KEY,
  opaque_record bytea NOT NULL,
  sealed_recovery_key bytea NOT NULL,
  failed_attempts integer NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
