-- Accounts, their devices and the public keys they publish. Every table is
-- keyed by account id first, so it shards by account on a distributed
-- PostgreSQL-compatible database.

CREATE TABLE accounts (
  id uuid PRIMARY KEY,
  -- Stored lower-cased: usernames are case-insensitive.
  username text NOT NULL UNIQUE,
  identity_key bytea NOT NULL,
  -- Hash of the credential derived from the recovery key; set with the first backup.
  recovery_credential_hash bytea,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
  account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  device_id integer NOT NULL CHECK (device_id > 0),
  registration_id integer NOT NULL,
  -- Salted hash of the device secret; the secret itself is never stored.
  secret_salt bytea NOT NULL,
  secret_hash bytea NOT NULL,
  signed_pre_key_id integer NOT NULL,
  signed_pre_key bytea NOT NULL,
  signed_pre_key_signature bytea NOT NULL,
  kyber_last_resort_key_id integer NOT NULL,
  kyber_last_resort_key bytea NOT NULL,
  kyber_last_resort_signature bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (account_id, device_id)
);

CREATE TABLE one_time_ec_pre_keys (
  account_id uuid NOT NULL,
  device_id integer NOT NULL,
  key_id integer NOT NULL,
  public_key bytea NOT NULL,
  PRIMARY KEY (account_id, device_id, key_id),
  FOREIGN KEY (account_id, device_id) REFERENCES devices (account_id, device_id) ON DELETE CASCADE
);

CREATE TABLE one_time_kyber_pre_keys (
  account_id uuid NOT NULL,
  device_id integer NOT NULL,
  key_id integer NOT NULL,
  public_key bytea NOT NULL,
  signature bytea NOT NULL,
  PRIMARY KEY (account_id, device_id, key_id),
  FOREIGN KEY (account_id, device_id) REFERENCES devices (account_id, device_id) ON DELETE CASCADE
);
