export { PostgresModule, PG_POOL, PostgresOptions } from './postgres.module';
export { migrate, loadMigrations, Migration, MigrationResult } from './migrations';
export type { Pool, PoolClient } from 'pg';
