-- Linked devices: a device's name and the day it last connected (kept to the day, as a courtesy to
-- privacy); created_at, from 0001, is when it registered or was linked.
ALTER TABLE devices
  ADD COLUMN name text NOT NULL DEFAULT '',
  ADD COLUMN last_seen_day date;

-- The account's device list as its devices signed it (a serialized sotto.common.v1.DeviceListContent
-- and the account identity key's signature over it). Account recovery empties content and
-- signature, the old list being signed by the old identity key, but keeps the version, so the
-- recovered device's list goes above every version anyone has seen.
CREATE TABLE device_lists (
  account_id uuid PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
  version bigint NOT NULL CHECK (version > 0),
  content bytea NOT NULL,
  signature bytea NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- One-time link tokens, by the SHA-256 of the 32-byte token (the token itself is never stored).
-- Keyed by token, not account: a token has no account until a device of one approves it.
CREATE TABLE link_tokens (
  token_hash bytea PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  -- Set together by the approval: the account, the device id reserved for the new device (taken
  -- from accounts.next_device_id, so never reused) and what the approving device sealed for it.
  account_id uuid REFERENCES accounts (id) ON DELETE CASCADE,
  device_id integer,
  provisioning bytea,
  approved_at timestamptz,
  completed_at timestamptz
);

CREATE INDEX link_tokens_expires_at ON link_tokens (expires_at);
