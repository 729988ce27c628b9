import { Inject, Injectable } from '@nestjs/common';
import type { AccountId, DeviceId } from '@sotto/platform/ids';
import { inTransaction, PG_POOL, type Pool, type PoolClient } from '@sotto/platform/postgres';
import {
  insertDevice,
  MAX_DEVICE_ID,
  type DeviceSummary,
  type NewDevice,
} from '../accounts/accounts.repository';
import type { VerifiedDeviceList } from './device-list-check';

/** A link token's state, as the holder of the token may see it. */
export interface LinkState {
  readonly expiresAt: Date;
  /** Set once a device of an account has approved it. */
  readonly approval?: {
    readonly accountId: AccountId;
    readonly deviceId: DeviceId;
    readonly provisioning: Uint8Array;
  };
}

/** What the account looks like to a change of its devices, read under the account's row lock. */
export interface AccountDevicesState {
  readonly accountId: AccountId;
  readonly identityKey: Uint8Array;
  readonly devices: readonly DeviceSummary[];
  /** 0 while the account has published no list. */
  readonly storedVersion: bigint;
}

export interface DeviceDetails {
  readonly deviceId: DeviceId;
  readonly name: string;
  readonly linkedAt: Date;
  /** Midnight UTC of the day last seen. */
  readonly lastSeen: Date | undefined;
}

export interface StoredDeviceList {
  readonly content: Uint8Array;
  readonly signature: Uint8Array;
}

/** A refusal the service turns into a gRPC status; the transaction that met it changed nothing. */
export type DeviceChangeRefusal = 'no-token' | 'not-approved' | 'full' | 'no-device' | 'last-device';

export class DeviceChangeRefused extends Error {
  constructor(readonly reason: DeviceChangeRefusal) {
    super(reason);
  }
}

type Client = Pick<PoolClient, 'query'>;

/** Expired tokens deleted at a time, on the way to making a new one: the table stays small without a sweeper. */
const EXPIRED_TOKENS_PER_SWEEP = 100;

/**
 * Locks the account row (every change of an account's devices and list takes
 * it first, so two racing changes are serialised and the second sees the
 * first's result) and reads the devices and the stored list's version.
 */
async function lockAccount(client: Client, accountId: AccountId): Promise<AccountDevicesState | undefined> {
  const account = await client.query<{ identity_key: Buffer }>(
    'SELECT identity_key FROM accounts WHERE id = $1 FOR UPDATE',
    [accountId],
  );
  const row = account.rows[0];
  if (!row) return undefined;
  const [devices, list] = await Promise.all([
    client.query<{ device_id: DeviceId; registration_id: number }>(
      'SELECT device_id, registration_id FROM devices WHERE account_id = $1 ORDER BY device_id',
      [accountId],
    ),
    client.query<{ version: string }>('SELECT version FROM device_lists WHERE account_id = $1', [accountId]),
  ]);
  return {
    accountId,
    identityKey: row.identity_key,
    devices: devices.rows.map((device) => ({
      deviceId: device.device_id,
      registrationId: device.registration_id,
    })),
    storedVersion: BigInt(list.rows[0]?.version ?? 0),
  };
}

async function storeList(client: Client, accountId: AccountId, list: VerifiedDeviceList): Promise<void> {
  await client.query(
    `INSERT INTO device_lists (account_id, version, content, signature) VALUES ($1, $2, $3, $4)
     ON CONFLICT (account_id) DO UPDATE
       SET version = EXCLUDED.version, content = EXCLUDED.content, signature = EXCLUDED.signature,
           updated_at = now()`,
    [accountId, list.version.toString(), Buffer.from(list.content), Buffer.from(list.signature)],
  );
}

/** Link tokens, device names and times, and signed device lists, in PostgreSQL. */
@Injectable()
export class DevicesRepository {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  /** Stores a new token's hash; expired tokens are swept on the way. */
  async createLink(tokenHash: Uint8Array, ttlSeconds: number): Promise<Date> {
    await this.pool.query(
      `DELETE FROM link_tokens WHERE token_hash IN (
         SELECT token_hash FROM link_tokens WHERE expires_at <= now() LIMIT $1)`,
      [EXPIRED_TOKENS_PER_SWEEP],
    );
    const { rows } = await this.pool.query<{ expires_at: Date }>(
      `INSERT INTO link_tokens (token_hash, expires_at) VALUES ($1, now() + make_interval(secs => $2))
       RETURNING expires_at`,
      [Buffer.from(tokenHash), ttlSeconds],
    );
    return rows[0]?.expires_at ?? new Date();
  }

  /** A live token (not expired, not used); an expired one is deleted as it is met. */
  async link(tokenHash: Uint8Array): Promise<LinkState | undefined> {
    const { rows } = await this.pool.query<{
      expires_at: Date;
      expired: boolean;
      completed: boolean;
      account_id: AccountId | null;
      device_id: DeviceId | null;
      provisioning: Buffer | null;
    }>(
      `SELECT expires_at, expires_at <= now() AS expired, completed_at IS NOT NULL AS completed,
              account_id, device_id, provisioning
         FROM link_tokens WHERE token_hash = $1`,
      [Buffer.from(tokenHash)],
    );
    const row = rows[0];
    if (!row || row.completed) return undefined;
    if (row.expired) {
      await this.pool.query('DELETE FROM link_tokens WHERE token_hash = $1', [Buffer.from(tokenHash)]);
      return undefined;
    }
    return {
      expiresAt: row.expires_at,
      ...(row.account_id !== null && row.device_id !== null && row.provisioning !== null
        ? {
            approval: { accountId: row.account_id, deviceId: row.device_id, provisioning: row.provisioning },
          }
        : {}),
    };
  }

  /**
   * Approves a live, unapproved token for the account: reserves the account's
   * next device id (never one used before, nor one in use) and keeps the
   * provisioning ciphertext. One transaction, the token's and the account's
   * rows locked: a token is approved once, and the device count is read
   * after any racing change of the account's devices.
   */
  async approveLink(
    tokenHash: Uint8Array,
    accountId: AccountId,
    provisioning: Uint8Array,
    maxDevices: number,
  ): Promise<DeviceId> {
    return inTransaction(this.pool, async (client) => {
      const token = await client.query(
        `SELECT 1 FROM link_tokens
          WHERE token_hash = $1 AND expires_at > now() AND approved_at IS NULL FOR UPDATE`,
        [Buffer.from(tokenHash)],
      );
      if (token.rowCount !== 1) throw new DeviceChangeRefused('no-token');
      const account = await lockAccount(client, accountId);
      if (!account) throw new DeviceChangeRefused('no-device');
      if (account.devices.length >= maxDevices) throw new DeviceChangeRefused('full');
      const { rows } = await client.query<{ next_device_id: number }>(
        'SELECT next_device_id FROM accounts WHERE id = $1',
        [accountId],
      );
      const inUse = new Set(account.devices.map((device) => device.deviceId as number));
      let next = rows[0]?.next_device_id ?? 2;
      let deviceId = (((next - 1) % MAX_DEVICE_ID) + 1) as DeviceId;
      while (inUse.has(deviceId)) {
        next += 1;
        deviceId = (((next - 1) % MAX_DEVICE_ID) + 1) as DeviceId;
      }
      await client.query('UPDATE accounts SET next_device_id = $2 WHERE id = $1', [accountId, deviceId + 1]);
      await client.query(
        `UPDATE link_tokens SET account_id = $2, device_id = $3, provisioning = $4, approved_at = now()
          WHERE token_hash = $1`,
        [Buffer.from(tokenHash), accountId, deviceId, Buffer.from(provisioning)],
      );
      return deviceId;
    });
  }

  /**
   * Adds the device a token was approved for, in one transaction with the
   * token's and the account's rows locked: `prepare` checks the device's keys
   * and the signed list against the account as it is now (throwing changes
   * nothing), then the device, the list and the token's use are written.
   */
  async completeLink(
    tokenHash: Uint8Array,
    maxDevices: number,
    prepare: (
      account: AccountDevicesState,
      deviceId: DeviceId,
    ) => { device: NewDevice; name: string; list: VerifiedDeviceList },
  ): Promise<{ accountId: AccountId; deviceId: DeviceId }> {
    return inTransaction(this.pool, async (client) => {
      const token = await client.query<{ approved: boolean; account_id: AccountId; device_id: DeviceId }>(
        `SELECT approved_at IS NOT NULL AS approved, account_id, device_id FROM link_tokens
          WHERE token_hash = $1 AND expires_at > now() AND completed_at IS NULL FOR UPDATE`,
        [Buffer.from(tokenHash)],
      );
      const row = token.rows[0];
      if (!row) throw new DeviceChangeRefused('no-token');
      if (!row.approved) throw new DeviceChangeRefused('not-approved');
      const account = await lockAccount(client, row.account_id);
      if (!account) throw new DeviceChangeRefused('no-token');
      if (account.devices.length >= maxDevices) throw new DeviceChangeRefused('full');
      const { device, name, list } = prepare(account, row.device_id);
      await insertDevice(client, row.account_id, row.device_id, device, name);
      await storeList(client, row.account_id, list);
      await client.query(
        'UPDATE link_tokens SET completed_at = now(), provisioning = NULL WHERE token_hash = $1',
        [Buffer.from(tokenHash)],
      );
      return { accountId: row.account_id, deviceId: row.device_id };
    });
  }

  /**
   * Removes a device (its keys go with it) with the list that no longer
   * names it, `verify` checking the list against the account under its lock.
   */
  async removeDevice(
    accountId: AccountId,
    deviceId: DeviceId,
    verify: (account: AccountDevicesState, remaining: readonly DeviceSummary[]) => VerifiedDeviceList,
  ): Promise<void> {
    await inTransaction(this.pool, async (client) => {
      const account = await lockAccount(client, accountId);
      if (!account || !account.devices.some((device) => device.deviceId === deviceId)) {
        throw new DeviceChangeRefused('no-device');
      }
      if (account.devices.length === 1) throw new DeviceChangeRefused('last-device');
      const list = verify(
        account,
        account.devices.filter((device) => device.deviceId !== deviceId),
      );
      await client.query('DELETE FROM devices WHERE account_id = $1 AND device_id = $2', [
        accountId,
        deviceId,
      ]);
      await storeList(client, accountId, list);
    });
  }

  /** Stores a list `verify` accepts for the account as it is, under its lock; false when there is no such account. */
  async setDeviceList(
    accountId: AccountId,
    verify: (account: AccountDevicesState) => VerifiedDeviceList,
  ): Promise<boolean> {
    return inTransaction(this.pool, async (client) => {
      const account = await lockAccount(client, accountId);
      if (!account) return false;
      await storeList(client, accountId, verify(account));
      return true;
    });
  }

  /** The stored list; undefined while the account has published none (or recovery withdrew it). */
  async deviceList(accountId: AccountId): Promise<StoredDeviceList | undefined> {
    const { rows } = await this.pool.query<{ content: Buffer; signature: Buffer }>(
      'SELECT content, signature FROM device_lists WHERE account_id = $1',
      [accountId],
    );
    const row = rows[0];
    return row && row.content.length > 0 ? { content: row.content, signature: row.signature } : undefined;
  }

  async details(accountId: AccountId): Promise<DeviceDetails[]> {
    const { rows } = await this.pool.query<{
      device_id: DeviceId;
      name: string;
      created_at: Date;
      last_seen: Date | null;
    }>(
      `SELECT device_id, name, created_at,
              (last_seen_day::timestamp AT TIME ZONE 'UTC') AS last_seen
         FROM devices WHERE account_id = $1 ORDER BY device_id`,
      [accountId],
    );
    return rows.map((row) => ({
      deviceId: row.device_id,
      name: row.name,
      linkedAt: row.created_at,
      lastSeen: row.last_seen ?? undefined,
    }));
  }

  /** Sets the device's last-seen day to today (UTC); a write only when the day changed. */
  async recordLastSeen(accountId: AccountId, deviceId: DeviceId): Promise<void> {
    await this.pool.query(
      `UPDATE devices SET last_seen_day = (now() AT TIME ZONE 'UTC')::date
        WHERE account_id = $1 AND device_id = $2
          AND last_seen_day IS DISTINCT FROM (now() AT TIME ZONE 'UTC')::date`,
      [accountId, deviceId],
    );
  }
}
