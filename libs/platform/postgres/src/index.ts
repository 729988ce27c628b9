export { PostgresModule, PG_POOL, PostgresOptions, postgresClientConfig } from './postgres.module';
export { postgresEnv, postgresConnection, type PostgresEnv } from './postgres-env';
export { migrate, loadMigrations, Migration, MigrationResult } from './migrations';
export { inTransaction, inTransactionOn } from './transaction';
export type { Pool, PoolClient } from 'pg';
