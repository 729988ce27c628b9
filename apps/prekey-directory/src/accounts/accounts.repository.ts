import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { AccountId, DeviceId } from '@sotto/platform/ids';
import { inTransaction, PG_POOL, type Pool, type PoolClient } from '@sotto/platform/postgres';
import type { KyberPreKey, SignedEcPreKey } from '@sotto/contracts/generated/sotto/common/v1/keys';
import type { ValidatedKeys } from '../prekeys/key-validation';
import { insertOneTimeKeys } from '../prekeys/prekeys.repository';
import type { StoredCredential } from './credentials';

export class UsernameTakenError extends Error {}

export interface NewDevice {
  readonly registrationId: number;
  readonly credential: StoredCredential;
  readonly signedPreKey: SignedEcPreKey;
  readonly kyberLastResort: KyberPreKey;
  readonly keys: ValidatedKeys;
}

export interface NewAccount extends NewDevice {
  readonly username: string;
  readonly identityKey: Uint8Array;
}

/** Who may send the account sealed messages: holders of `key`, or anyone when `unrestricted`. */
export interface UnidentifiedAccess {
  readonly key: Uint8Array | undefined;
  readonly unrestricted: boolean;
}

export interface DeviceSummary {
  readonly deviceId: DeviceId;
  readonly registrationId: number;
}

/** The primary device of a new account. */
export const PRIMARY_DEVICE_ID = 1 as DeviceId;
/** libsignal addresses devices with ids 1 to 127. */
export const MAX_DEVICE_ID = 127;

type Queryable = Pick<PoolClient, 'query'>;

/** Inserts a device and its keys, in the caller's transaction; `name` is shown in device listings. */
export async function insertDevice(
  client: Queryable,
  accountId: AccountId,
  deviceId: DeviceId,
  device: NewDevice,
  name = '',
) {
  await client.query(
    `INSERT INTO devices (account_id, device_id, registration_id, secret_salt, secret_hash,
       signed_pre_key_id, signed_pre_key, signed_pre_key_signature,
       kyber_last_resort_key_id, kyber_last_resort_key, kyber_last_resort_signature, name)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
    [
      accountId,
      deviceId,
      device.registrationId,
      device.credential.salt,
      device.credential.hash,
      device.signedPreKey.keyId,
      device.signedPreKey.publicKey,
      device.signedPreKey.signature,
      device.kyberLastResort.keyId,
      device.kyberLastResort.publicKey,
      device.kyberLastResort.signature,
      name,
    ],
  );
  await insertOneTimeKeys(client, accountId, deviceId, device.keys);
}

/** Accounts, devices and credentials in PostgreSQL. */
@Injectable()
export class AccountsRepository {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  /** Creates the account, its primary device and its keys in one transaction. */
  async create(account: NewAccount): Promise<AccountId> {
    const id = randomUUID() as AccountId;
    await inTransaction(this.pool, async (client) => {
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
      await insertDevice(client, id, PRIMARY_DEVICE_ID, account);
    });
    return id;
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

  /** Sets the account's sealed-sender access; false when there is no such account. */
  async setUnidentifiedAccess(accountId: AccountId, access: UnidentifiedAccess): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      'UPDATE accounts SET unidentified_access_key = $2, unrestricted_unidentified_access = $3 WHERE id = $1',
      [accountId, access.key === undefined ? null : Buffer.from(access.key), access.unrestricted],
    );
    return rowCount === 1;
  }

  async unidentifiedAccess(accountId: AccountId): Promise<UnidentifiedAccess | undefined> {
    const { rows } = await this.pool.query<{
      unidentified_access_key: Buffer | null;
      unrestricted_unidentified_access: boolean;
    }>('SELECT unidentified_access_key, unrestricted_unidentified_access FROM accounts WHERE id = $1', [
      accountId,
    ]);
    const row = rows[0];
    if (row === undefined) return undefined;
    return {
      key: row.unidentified_access_key ?? undefined,
      unrestricted: row.unrestricted_unidentified_access,
    };
  }

  /** The access of each of these accounts that exists, in one query. */
  async unidentifiedAccessOfAccounts(
    accountIds: readonly AccountId[],
  ): Promise<Map<AccountId, UnidentifiedAccess>> {
    const found = new Map<AccountId, UnidentifiedAccess>();
    if (accountIds.length === 0) return found;
    const { rows } = await this.pool.query<{
      id: AccountId;
      unidentified_access_key: Buffer | null;
      unrestricted_unidentified_access: boolean;
    }>(
      'SELECT id, unidentified_access_key, unrestricted_unidentified_access FROM accounts WHERE id = ANY($1::uuid[])',
      [[...new Set(accountIds)]],
    );
    for (const row of rows) {
      found.set(row.id, {
        key: row.unidentified_access_key ?? undefined,
        unrestricted: row.unrestricted_unidentified_access,
      });
    }
    return found;
  }

  async credential(accountId: AccountId, deviceId: DeviceId): Promise<StoredCredential | undefined> {
    const { rows } = await this.pool.query<{ secret_salt: Buffer; secret_hash: Buffer }>(
      'SELECT secret_salt, secret_hash FROM devices WHERE account_id = $1 AND device_id = $2',
      [accountId, deviceId],
    );
    const row = rows[0];
    return row ? { salt: row.secret_salt, hash: row.secret_hash } : undefined;
  }

  /**
   * Sets the account's recovery credential if `mayReplace` accepts the one
   * stored now (undefined while there is none), checked and written in one
   * transaction with the account row locked, so two devices racing to set
   * the first credential cannot both skip the check.
   */
  async replaceRecoveryCredential(
    accountId: AccountId,
    mayReplace: (stored: StoredCredential | undefined) => boolean,
    credential: StoredCredential,
  ): Promise<'set' | 'no-account' | 'refused'> {
    return inTransaction(this.pool, async (client) => {
      const { rows } = await client.query<{ salt: Buffer | null; hash: Buffer | null }>(
        `SELECT recovery_credential_salt AS salt, recovery_credential_hash AS hash
           FROM accounts WHERE id = $1 FOR UPDATE`,
        [accountId],
      );
      const row = rows[0];
      if (!row) return 'no-account';
      if (!mayReplace(row.salt && row.hash ? { salt: row.salt, hash: row.hash } : undefined))
        return 'refused';
      await client.query(
        'UPDATE accounts SET recovery_credential_salt = $2, recovery_credential_hash = $3 WHERE id = $1',
        [accountId, credential.salt, credential.hash],
      );
      return 'set';
    });
  }

  /**
   * Replaces a device's secret if `verify` accepts the stored one, in one
   * transaction with the device row locked: of two rotations presenting the
   * same secret, the second sees the first's and is refused. False when the
   * device does not exist or the check fails.
   */
  async rotateSecret(
    accountId: AccountId,
    deviceId: DeviceId,
    verify: (stored: StoredCredential | undefined) => boolean,
    next: StoredCredential,
  ): Promise<boolean> {
    return inTransaction(this.pool, async (client) => {
      const { rows } = await client.query<{ secret_salt: Buffer; secret_hash: Buffer }>(
        `SELECT secret_salt, secret_hash FROM devices
          WHERE account_id = $1 AND device_id = $2 FOR UPDATE`,
        [accountId, deviceId],
      );
      const row = rows[0];
      if (!verify(row ? { salt: row.secret_salt, hash: row.secret_hash } : undefined)) return false;
      await client.query(
        'UPDATE devices SET secret_salt = $3, secret_hash = $4 WHERE account_id = $1 AND device_id = $2',
        [accountId, deviceId, next.salt, next.hash],
      );
      return true;
    });
  }

  /**
   * Account recovery, in one transaction with the account row locked: checks
   * the credential, signs out every device (their keys and the links they
   * approved go with them), takes
   * the new identity key and makes the new device the primary one under a
   * device id never used by the account before (cycling within libsignal's
   * 1 to 127). Undefined when the username or the credential is wrong.
   */
  async recover(
    username: string,
    verify: (stored: StoredCredential | undefined) => boolean,
    identityKey: Uint8Array,
    device: NewDevice,
  ): Promise<{ accountId: AccountId; deviceId: DeviceId; signedOutDeviceIds: DeviceId[] } | undefined> {
    // A wrong credential leaves the transaction having only read, so committing it changes nothing.
    return inTransaction(this.pool, async (client) => {
      const { rows } = await client.query<{
        id: AccountId;
        salt: Buffer | null;
        hash: Buffer | null;
        next_device_id: number;
      }>(
        `SELECT id, recovery_credential_salt AS salt, recovery_credential_hash AS hash, next_device_id
           FROM accounts WHERE username = $1 FOR UPDATE`,
        [username],
      );
      const row = rows[0];
      const stored = row?.salt && row.hash ? { salt: row.salt, hash: row.hash } : undefined;
      if (!verify(stored) || !row) return undefined;
      const deviceId = (((row.next_device_id - 1) % MAX_DEVICE_ID) + 1) as DeviceId;
      const signedOut = await client.query<{ device_id: DeviceId }>(
        'DELETE FROM devices WHERE account_id = $1 RETURNING device_id',
        [row.id],
      );
      await client.query('UPDATE accounts SET identity_key = $2, next_device_id = $3 WHERE id = $1', [
        row.id,
        identityKey,
        deviceId + 1,
      ]);
      await insertDevice(client, row.id, deviceId, device);
      // The stored list was signed by the old identity key: it is withdrawn, its version kept so the
      // recovered device's list goes above every one anyone has seen.
      await client.query(
        `UPDATE device_lists SET content = '', signature = '', updated_at = now() WHERE account_id = $1`,
        [row.id],
      );
      // Links the old devices approved go with them: their provisioning (what an old device sealed
      // for the new one) is no longer handed out, and no device joins on an old device's word.
      await client.query('DELETE FROM link_tokens WHERE account_id = $1', [row.id]);
      return {
        accountId: row.id,
        deviceId,
        signedOutDeviceIds: signedOut.rows.map((device) => device.device_id).sort((a, b) => a - b),
      };
    });
  }

  async devices(accountId: AccountId): Promise<DeviceSummary[]> {
    const { rows } = await this.pool.query<{ device_id: DeviceId; registration_id: number }>(
      'SELECT device_id, registration_id FROM devices WHERE account_id = $1 ORDER BY device_id',
      [accountId],
    );
    return rows.map((row) => ({ deviceId: row.device_id, registrationId: row.registration_id }));
  }

  /** The devices of each of these accounts, in one query; an account that does not exist has none. */
  async devicesOfAccounts(accountIds: readonly AccountId[]): Promise<Map<AccountId, DeviceSummary[]>> {
    const found = new Map<AccountId, DeviceSummary[]>();
    if (accountIds.length === 0) return found;
    const { rows } = await this.pool.query<{
      account_id: AccountId;
      device_id: DeviceId;
      registration_id: number;
    }>(
      'SELECT account_id, device_id, registration_id FROM devices WHERE account_id = ANY($1::uuid[]) ORDER BY account_id, device_id',
      [[...new Set(accountIds)]],
    );
    for (const row of rows) {
      const devices = found.get(row.account_id) ?? [];
      devices.push({ deviceId: row.device_id, registrationId: row.registration_id });
      found.set(row.account_id, devices);
    }
    return found;
  }

  async usernameOf(accountId: AccountId): Promise<string | undefined> {
    const { rows } = await this.pool.query<{ username: string }>(
      'SELECT username FROM accounts WHERE id = $1',
      [accountId],
    );
    return rows[0]?.username;
  }
}
