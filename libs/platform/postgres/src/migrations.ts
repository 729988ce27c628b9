import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Pool } from 'pg';
import { inTransactionOn } from './transaction';

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
  readonly checksum: string;
}

export interface MigrationResult {
  readonly applied: readonly string[];
}

const FILE_NAME = /^(\d{4})_([a-z0-9_]+)\.sql$/;

/** Reads `NNNN_name.sql` files, in version order. Any other file is an error, not silently skipped. */
export function loadMigrations(dir: string): Migration[] {
  const migrations = readdirSync(dir)
    .filter((file) => file.endsWith('.sql'))
    .map((file) => {
      const match = FILE_NAME.exec(file);
      if (!match) throw new Error(`migration file ${file} is not named NNNN_snake_case.sql`);
      const sql = readFileSync(join(dir, file), 'utf8');
      return {
        version: Number(match[1]),
        name: file,
        sql,
        checksum: createHash('sha256').update(sql).digest('hex'),
      };
    })
    .sort((a, b) => a.version - b.version);
  migrations.forEach((migration, index) => {
    if (migration.version !== index + 1) {
      throw new Error(`migrations must be numbered 0001, 0002, … without gaps; found ${migration.name}`);
    }
  });
  return migrations;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]*$/;

/**
 * Brings one service's schema up to date. Replicas starting together are
 * serialized by an advisory lock; each migration runs in its own transaction;
 * a migration changed after it was applied stops the service rather than
 * leaving the schema in an unknown state.
 */
export async function migrate(
  pool: Pool,
  schema: string,
  migrations: readonly Migration[],
): Promise<MigrationResult> {
  if (!IDENTIFIER.test(schema)) throw new Error(`invalid schema name ${schema}`);
  const client = await pool.connect();
  const applied: string[] = [];
  try {
    await client.query('SELECT pg_advisory_lock(hashtext($1))', [`sotto.migrate.${schema}`]);
    try {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${schema}.schema_migrations (
           version integer PRIMARY KEY,
           name text NOT NULL,
           checksum text NOT NULL,
           applied_at timestamptz NOT NULL DEFAULT now()
         )`,
      );
      const { rows } = await client.query<{ version: number; name: string; checksum: string }>(
        `SELECT version, name, checksum FROM ${schema}.schema_migrations ORDER BY version`,
      );
      const done = new Map(rows.map((row) => [row.version, row]));
      for (const row of rows) {
        if (!migrations.some((m) => m.version === row.version)) {
          throw new Error(
            `schema ${schema} has migration ${row.name}, which this build does not know; is it older?`,
          );
        }
      }
      for (const migration of migrations) {
        const previous = done.get(migration.version);
        if (previous) {
          if (previous.checksum !== migration.checksum) {
            throw new Error(
              `migration ${migration.name} was changed after it was applied to schema ${schema}`,
            );
          }
          continue;
        }
        // On the client that holds the lock: the pool may have no other to give.
        await inTransactionOn(client, async () => {
          await client.query(`SET LOCAL search_path TO ${schema}`);
          await client.query(migration.sql);
          await client.query(
            `INSERT INTO ${schema}.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`,
            [migration.version, migration.name, migration.checksum],
          );
        }).catch((error: unknown) => {
          const reason = error instanceof Error ? error.message : String(error);
          throw new Error(`migration ${migration.name} failed: ${reason}`);
        });
        applied.push(migration.name);
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock(hashtext($1))', [`sotto.migrate.${schema}`]);
    }
  } finally {
    client.release();
  }
  return { applied };
}
