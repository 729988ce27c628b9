-- Sealed sender: the account's unidentified-access key (16 bytes, derived by its clients from the
-- profile key; NULL until set) and whether it accepts sealed messages from anyone without it.
ALTER TABLE accounts
  ADD COLUMN unidentified_access_key bytea,
  ADD COLUMN unrestricted_unidentified_access boolean NOT NULL DEFAULT false;
