import { Inject, Logger, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { Pool } from 'pg';
import { Readiness } from '@sotto/platform/health';
import { loadMigrations, migrate } from './migrations';

export const PG_POOL = Symbol('PG_POOL');

export interface PostgresOptions {
  readonly url: string;
  /** The service's own schema; its tables live there and nowhere else. */
  readonly schema: string;
  readonly migrationsDir: string;
  readonly poolSize?: number;
}

class PostgresLifecycle implements OnApplicationShutdown {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  async onApplicationShutdown(): Promise<void> {
    await this.pool.end();
  }
}

@Module({})
export class PostgresModule {
  /** A connection pool on the service's schema, migrated before the service starts serving. */
  static forRoot(options: PostgresOptions): DynamicModule {
    return {
      module: PostgresModule,
      global: true,
      providers: [
        {
          provide: PG_POOL,
          inject: [Readiness],
          useFactory: async (readiness: Readiness): Promise<Pool> => {
            const pool = new Pool({
              connectionString: options.url,
              max: options.poolSize ?? 10,
              options: `-c search_path=${options.schema}`,
              application_name: `sotto-${options.schema}`,
            });
            // An idle client's error (server restart) must not crash the process.
            pool.on('error', (error) => new Logger('Postgres').warn(`idle client error: ${error.message}`));
            try {
              const { applied } = await migrate(pool, options.schema, loadMigrations(options.migrationsDir));
              if (applied.length > 0) {
                new Logger('Postgres').log(`applied migrations to ${options.schema}: ${applied.join(', ')}`);
              }
            } catch (error) {
              await pool.end();
              throw error;
            }
            readiness.register('postgres', async () => {
              await pool.query('SELECT 1');
            });
            return pool;
          },
        },
        PostgresLifecycle,
      ],
      exports: [PG_POOL],
    };
  }
}
