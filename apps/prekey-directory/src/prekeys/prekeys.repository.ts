import { Inject, Injectable } from '@nestjs/common';
import type { AccountId, DeviceId } from '@sotto/platform/ids';
import { inTransaction, PG_POOL, type Pool, type PoolClient } from '@sotto/platform/postgres';
import type { EcPreKey, KyberPreKey, SignedEcPreKey } from '@sotto/contracts/generated/sotto/common/v1/keys';
import type { ValidatedKeys } from './key-validation';

export interface StoredBundle {
  readonly deviceId: DeviceId;
  readonly registrationId: number;
  readonly signedPreKey: SignedEcPreKey;
  readonly oneTimePreKey?: EcPreKey;
  readonly kyberPreKey: KyberPreKey;
  readonly kyberLastResort: boolean;
}

export interface PreKeyCounts {
  readonly ec: number;
  readonly kyber: number;
}

type Queryable = Pick<PoolClient, 'query'>;

/** Stores one-time keys; a re-sent key id replaces the old key. */
export async function insertOneTimeKeys(
  db: Queryable,
  accountId: AccountId,
  deviceId: DeviceId,
  keys: Pick<ValidatedKeys, 'oneTimeEc' | 'oneTimeKyber'>,
): Promise<void> {
  if (keys.oneTimeEc.length > 0) {
    await db.query(
      `INSERT INTO one_time_ec_pre_keys (account_id, device_id, key_id, public_key)
       SELECT $1, $2, k.key_id, k.public_key FROM unnest($3::integer[], $4::bytea[]) AS k (key_id, public_key)
       ON CONFLICT (account_id, device_id, key_id) DO UPDATE SET public_key = excluded.public_key`,
      [
        accountId,
        deviceId,
        keys.oneTimeEc.map((k) => k.keyId),
        keys.oneTimeEc.map((k) => Buffer.from(k.publicKey)),
      ],
    );
  }
  if (keys.oneTimeKyber.length > 0) {
    await db.query(
      `INSERT INTO one_time_kyber_pre_keys (account_id, device_id, key_id, public_key, signature)
       SELECT $1, $2, k.key_id, k.public_key, k.signature
       FROM unnest($3::integer[], $4::bytea[], $5::bytea[]) AS k (key_id, public_key, signature)
       ON CONFLICT (account_id, device_id, key_id)
       DO UPDATE SET public_key = excluded.public_key, signature = excluded.signature`,
      [
        accountId,
        deviceId,
        keys.oneTimeKyber.map((k) => k.keyId),
        keys.oneTimeKyber.map((k) => Buffer.from(k.publicKey)),
        keys.oneTimeKyber.map((k) => Buffer.from(k.signature)),
      ],
    );
  }
}

/** A device's signed keys, as a bundle fetch reads them before claiming any one-time key. */
export interface BundleDevice {
  device_id: DeviceId;
  registration_id: number;
  signed_pre_key_id: number;
  signed_pre_key: Buffer;
  signed_pre_key_signature: Buffer;
  kyber_last_resort_key_id: number;
  kyber_last_resort_key: Buffer;
  kyber_last_resort_signature: Buffer;
}

/** Prekeys in PostgreSQL. Every claim of a one-time key is one statement that deletes and returns it. */
@Injectable()
export class PreKeysRepository {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  /** The devices a bundle fetch is for: all of the account's when deviceId is undefined. */
  async bundleDevices(accountId: AccountId, deviceId: DeviceId | undefined): Promise<BundleDevice[]> {
    const { rows } = await this.pool.query<BundleDevice>(
      `SELECT device_id, registration_id, signed_pre_key_id, signed_pre_key, signed_pre_key_signature,
              kyber_last_resort_key_id, kyber_last_resort_key, kyber_last_resort_signature
       FROM devices WHERE account_id = $1 AND ($2::integer IS NULL OR device_id = $2) ORDER BY device_id`,
      [accountId, deviceId ?? null],
    );
    return rows;
  }

  /**
   * A device's bundle: with freshly claimed one-time keys when `oneTime`,
   * else (and when none are left) without a one-time EC key and with the
   * last-resort Kyber key.
   */
  async claimBundle(accountId: AccountId, device: BundleDevice, oneTime: boolean): Promise<StoredBundle> {
    const { ec, kyber } = oneTime ? await this.claimOneTimeKeys(accountId, device.device_id) : {};
    return {
      deviceId: device.device_id,
      registrationId: device.registration_id,
      signedPreKey: {
        keyId: device.signed_pre_key_id,
        publicKey: device.signed_pre_key,
        signature: device.signed_pre_key_signature,
      },
      ...(ec ? { oneTimePreKey: { keyId: ec.key_id, publicKey: ec.public_key } } : {}),
      kyberPreKey: kyber
        ? { keyId: kyber.key_id, publicKey: kyber.public_key, signature: kyber.signature }
        : {
            keyId: device.kyber_last_resort_key_id,
            publicKey: device.kyber_last_resort_key,
            signature: device.kyber_last_resort_signature,
          },
      kyberLastResort: kyber === undefined,
    };
  }

  /**
   * One one-time key of each kind, each claimed by one statement that deletes
   * and returns it. SKIP LOCKED lets concurrent claims on any replica take
   * different keys instead of waiting on, or repeating, one.
   */
  private async claimOneTimeKeys(
    accountId: AccountId,
    deviceId: DeviceId,
  ): Promise<{
    ec?: { key_id: number; public_key: Buffer };
    kyber?: { key_id: number; public_key: Buffer; signature: Buffer };
  }> {
    const [ec, kyber] = await Promise.all([
      this.pool.query<{ key_id: number; public_key: Buffer }>(
        `DELETE FROM one_time_ec_pre_keys
         WHERE (account_id, device_id, key_id) IN (
           SELECT account_id, device_id, key_id FROM one_time_ec_pre_keys
           WHERE account_id = $1 AND device_id = $2
           ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING key_id, public_key`,
        [accountId, deviceId],
      ),
      this.pool.query<{ key_id: number; public_key: Buffer; signature: Buffer }>(
        `DELETE FROM one_time_kyber_pre_keys
         WHERE (account_id, device_id, key_id) IN (
           SELECT account_id, device_id, key_id FROM one_time_kyber_pre_keys
           WHERE account_id = $1 AND device_id = $2
           ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING key_id, public_key, signature`,
        [accountId, deviceId],
      ),
    ]);
    return { ec: ec.rows[0], kyber: kyber.rows[0] };
  }

  async count(accountId: AccountId, deviceId: DeviceId): Promise<PreKeyCounts> {
    const { rows } = await this.pool.query<{ ec: number; kyber: number }>(
      `SELECT (SELECT count(*) FROM one_time_ec_pre_keys WHERE account_id = $1 AND device_id = $2)::integer AS ec,
              (SELECT count(*) FROM one_time_kyber_pre_keys WHERE account_id = $1 AND device_id = $2)::integer AS kyber`,
      [accountId, deviceId],
    );
    return rows[0] ?? { ec: 0, kyber: 0 };
  }

  /** A refill: new one-time keys and, optionally, new signed keys, in one transaction. */
  async store(accountId: AccountId, deviceId: DeviceId, keys: ValidatedKeys): Promise<void> {
    await inTransaction(this.pool, async (client) => {
      if (keys.signedPreKey) {
        await client.query(
          `UPDATE devices SET signed_pre_key_id = $3, signed_pre_key = $4, signed_pre_key_signature = $5
           WHERE account_id = $1 AND device_id = $2`,
          [
            accountId,
            deviceId,
            keys.signedPreKey.keyId,
            keys.signedPreKey.publicKey,
            keys.signedPreKey.signature,
          ],
        );
      }
      if (keys.kyberLastResort) {
        await client.query(
          `UPDATE devices SET kyber_last_resort_key_id = $3, kyber_last_resort_key = $4, kyber_last_resort_signature = $5
           WHERE account_id = $1 AND device_id = $2`,
          [
            accountId,
            deviceId,
            keys.kyberLastResort.keyId,
            keys.kyberLastResort.publicKey,
            keys.kyberLastResort.signature,
          ],
        );
      }
      await insertOneTimeKeys(client, accountId, deviceId, keys);
    });
  }
}
