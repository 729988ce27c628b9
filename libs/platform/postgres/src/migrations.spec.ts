import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'pg';
import { createTestDatabase, identityFiles } from '@sotto/testing';
import { loadMigrations, migrate } from './migrations';
import { postgresClientConfig } from './postgres.module';

describe('migrations', () => {
  let pool: Pool;
  let dir: string;

  beforeEach(async () => {
    // As a service connects: over TLS, with its own certificate.
    pool = new Pool({
      ...postgresClientConfig(await createTestDatabase(), identityFiles('key-vault')),
      max: 4,
    });
    dir = mkdtempSync(join(tmpdir(), 'sotto-migrations-'));
  });

  afterEach(async () => {
    await pool.end();
    rmSync(dir, { recursive: true, force: true });
  });

  const write = (file: string, sql: string): void => writeFileSync(join(dir, file), sql);

  it('applies each migration once, in order, inside the service schema', async () => {
    write('0001_notes.sql', 'CREATE TABLE notes (id integer PRIMARY KEY);');
    write('0002_note_body.sql', 'ALTER TABLE notes ADD COLUMN body text;');
    expect(await migrate(pool, 'svc', loadMigrations(dir))).toEqual({
      applied: ['0001_notes.sql', '0002_note_body.sql'],
    });
    expect(await migrate(pool, 'svc', loadMigrations(dir))).toEqual({ applied: [] });
    const { rows } = await pool.query<{ column_name: string }>(
      "SELECT column_name FROM information_schema.columns WHERE table_schema = 'svc' AND table_name = 'notes' ORDER BY ordinal_position",
    );
    expect(rows.map((row) => row.column_name)).toEqual(['id', 'body']);
  });

  it('serializes replicas that start at the same time', async () => {
    write('0001_counter.sql', 'CREATE TABLE counter (n integer); INSERT INTO counter VALUES (1);');
    const results = await Promise.all([1, 2, 3].map(() => migrate(pool, 'svc', loadMigrations(dir))));
    expect(results.flatMap((result) => result.applied)).toEqual(['0001_counter.sql']);
    expect((await pool.query('SELECT n FROM svc.counter')).rows).toEqual([{ n: 1 }]);
  });

  it('rolls back a failing migration and keeps the ones before it', async () => {
    write('0001_ok.sql', 'CREATE TABLE ok (id integer);');
    write('0002_broken.sql', 'CREATE TABLE half (id integer); SELECT no_such_function();');
    await expect(migrate(pool, 'svc', loadMigrations(dir))).rejects.toThrow(
      'migration 0002_broken.sql failed: function no_such_function() does not exist',
    );
    const { rows } = await pool.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'svc' ORDER BY table_name",
    );
    expect(rows.map((row) => row.table_name)).toEqual(['ok', 'schema_migrations']);
  });

  it('refuses to run when an applied migration was edited', async () => {
    write('0001_notes.sql', 'CREATE TABLE notes (id integer);');
    await migrate(pool, 'svc', loadMigrations(dir));
    write('0001_notes.sql', 'CREATE TABLE notes (id bigint);');
    await expect(migrate(pool, 'svc', loadMigrations(dir))).rejects.toThrow(
      'migration 0001_notes.sql was changed after it was applied to schema svc',
    );
  });

  it('refuses badly named files and gaps in numbering', () => {
    write('0001_a.sql', 'SELECT 1;');
    write('0003_c.sql', 'SELECT 1;');
    expect(() => loadMigrations(dir)).toThrow('without gaps; found 0003_c.sql');
    write('2_b.sql', 'SELECT 1;');
    expect(() => loadMigrations(dir)).toThrow('migration file 2_b.sql is not named NNNN_snake_case.sql');
  });

  it('refuses a schema name that is not a plain identifier', async () => {
    await expect(migrate(pool, 'svc; DROP TABLE x', [])).rejects.toThrow('invalid schema name');
  });
});
