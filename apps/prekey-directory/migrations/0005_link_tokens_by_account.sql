-- Account recovery deletes the account's approved link tokens in its transaction: found by account.
CREATE INDEX link_tokens_account_id ON link_tokens (account_id) WHERE account_id IS NOT NULL;
