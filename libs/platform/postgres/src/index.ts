export { PostgresModule, PG_POOL, PostgresOptions } from './postgres.module';
export { migrate, loadMigrations, Migration, MigrationResult } from './migrations';
export { inTransaction, inTransactionOn } from './transaction';
export type { Pool, PoolClient } from 'pg';
