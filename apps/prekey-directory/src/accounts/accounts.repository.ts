import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { PG_POOL, type Pool } from '@sotto/platform/postgres';
import type { SignedPreKeyInput, ValidatedKeys } from '../prekeys/key-validation';
import { insertOneTimeKeys } from '../prekeys/prekeys.repository';
import type { AccountId } from './account-id';
import type { StoredCredential } from './credentials';

export class UsernameTakenError extends Error {}

export interface NewAccount {
  readonly username: string;
  readonly identityKey: Uint8Array;
  readonly registrationId: number;
  readonly credential: StoredCredential;
  readonly signedPreKey: SignedPreKeyInput;
  readonly kyberLastResort: SignedPreKeyInput;
  readonly keys: ValidatedKeys;
}

export interface DeviceSummary {
  readonly deviceId: number;
  readonly registrationId: number;
}

/** The primary device of a new account. */
export const PRIMARY_DEVICE_ID = 1;

/** Accounts, devices and credentials in PostgreSQL. */
@Injectable()
export class AccountsRepository {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  /** Creates the account, its primary device and its keys in one transaction. */
  async create(account: NewAccount): Promise<AccountId> {
    const id = randomUUID() as AccountId;
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      try {
        await client.query('INSERT INTO accounts (id, username, identity_key) VALUES ($1, $2, $3)', [
          id,
          account.username,
          account.identityKey,
        ]);
      } catch (error) {
        if ((error as { code?: string }).code === '23505') throw new UsernameTakenError(account.username);
        throw error;
      }
      await client.query(
        `INSERT INTO devices (account_id, device_id, registration_id, secret_salt, secret_hash,
           signed_pre_key_id, signed_pre_key, signed_pre_key_signature,
           kyber_last_resort_key_id, kyber_last_resort_key, kyber_last_resort_signature)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        [
          id,
          PRIMARY_DEVICE_ID,
          account.registrationId,
          account.credential.salt,
          account.credential.hash,
          account.signedPreKey.keyId,
          account.signedPreKey.publicKey,
          account.signedPreKey.signature,
          account.kyberLastResort.keyId,
          account.kyberLastResort.publicKey,
          account.kyberLastResort.signature,
        ],
      );
      await insertOneTimeKeys(client, id, PRIMARY_DEVICE_ID, account.keys);
      await client.query('COMMIT');
      return id;
    } catch (error) {
      await client.query('ROLLBACK');
      throw error;
    } finally {
      client.release();
    }
  }

  async findByUsername(username: string): Promise<{ id: AccountId; username: string } | undefined> {
    const { rows } = await this.pool.query<{ id: AccountId; username: string }>(
      'SELECT id, username FROM accounts WHERE username = $1',
      [username],
    );
    return rows[0];
  }

  async identityKey(accountId: AccountId): Promise<Uint8Array | undefined> {
    const { rows } = await this.pool.query<{ identity_key: Buffer }>(
      'SELECT identity_key FROM accounts WHERE id = $1',
      [accountId],
    );
    return rows[0]?.identity_key;
  }

  async credential(accountId: AccountId, deviceId: number): Promise<StoredCredential | undefined> {
    const { rows } = await this.pool.query<{ secret_salt: Buffer; secret_hash: Buffer }>(
      'SELECT secret_salt, secret_hash FROM devices WHERE account_id = $1 AND device_id = $2',
      [accountId, deviceId],
    );
    const row = rows[0];
    return row ? { salt: row.secret_salt, hash: row.secret_hash } : undefined;
  }

  async devices(accountId: AccountId): Promise<DeviceSummary[]> {
    const { rows } = await this.pool.query<{ device_id: number; registration_id: number }>(
      'SELECT device_id, registration_id FROM devices WHERE account_id = $1 ORDER BY device_id',
      [accountId],
    );
    return rows.map((row) => ({ deviceId: row.device_id, registrationId: row.registration_id }));
  }
}
