-- Account recovery: the salt of the recovery credential's hash (the hash column came with 0001),
-- and the device id the next recovered primary device gets, so it never reuses the id of a device
-- that was signed out (its mailbox, and contacts' sessions with it, belong to the old device).
ALTER TABLE accounts
  ADD COLUMN recovery_credential_salt bytea,
  ADD COLUMN next_device_id integer NOT NULL DEFAULT 2;
