import { Inject, Injectable } from '@nestjs/common';
import { PG_POOL, type Pool } from '@sotto/platform/postgres';

/** The OPAQUE server setup as stored: sealed, with the HSM key that sealed it. */
export interface StoredSetup {
  readonly sealedSetup: Buffer;
  readonly keyLabel: string;
  readonly keyId: Buffer;
}

/** The one row of opaque_server_setup. */
@Injectable()
export class ServerSetupStore {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  async read(): Promise<StoredSetup | undefined> {
    const { rows } = await this.pool.query<{ sealed_setup: Buffer; key_label: string; key_id: Buffer }>(
      'SELECT sealed_setup, key_label, key_id FROM opaque_server_setup WHERE id = 1',
    );
    const row = rows[0];
    return row ? { sealedSetup: row.sealed_setup, keyLabel: row.key_label, keyId: row.key_id } : undefined;
  }

  /** Stores a setup unless another replica stored one first; theirs then stands. */
  async insertIfAbsent(setup: StoredSetup): Promise<void> {
    await this.pool.query(
      `INSERT INTO opaque_server_setup (id, sealed_setup, key_label, key_id) VALUES (1, $1, $2, $3)
       ON CONFLICT (id) DO NOTHING`,
      [setup.sealedSetup, setup.keyLabel, setup.keyId],
    );
  }
}
