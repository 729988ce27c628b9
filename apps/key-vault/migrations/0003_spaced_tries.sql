-- Spaced tries: after the first 3 tries since a success, each further one is
-- counted only once a wait has passed since the last one. The time of the last
-- counted try sits in the row beside the count, so "wait, then count" stays one
-- conditional UPDATE. Every counted try is a failed one unless a success resets
-- the count. '-infinity': no try counted since this column exists.
ALTER TABLE vault_records
  ADD COLUMN last_attempt_at timestamptz NOT NULL DEFAULT '-infinity';
