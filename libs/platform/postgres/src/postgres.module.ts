import { Inject, Logger, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { Pool, type ClientConfig } from 'pg';
import { Readiness } from '@sotto/platform/health';
import { clientTlsOptions, type ClientTlsFiles } from '@sotto/platform/tls';
import { loadMigrations, migrate } from './migrations';
import { postgresUrlTls } from './postgres-env';

export const PG_POOL = Symbol('PG_POOL');

/**
 * pg's connection settings for a URL and TLS files. With sslmode=verify-full
 * the server's certificate must chain to the CA (from `tls`, or sslrootcert in
 * the URL; else the system's roots) and name the URL's host, and the client
 * presents its certificate if it has one; TLS files without verify-full, or
 * another sslmode, are refused rather than left unused. The URL's TLS
 * parameters are taken out and given to pg as one `ssl` setting, since pg would
 * let the URL's replace the whole of it.
 */
export function postgresClientConfig(url: string, tls: ClientTlsFiles = {}): ClientConfig {
  const asked = postgresUrlTls(url);
  const stripped = new URL(url);
  for (const name of ['sslmode', 'sslrootcert', 'sslcert', 'sslkey']) stripped.searchParams.delete(name);
  const given = Object.values(tls).some((file) => file !== undefined);
  if (asked.refused.length > 0) throw new Error('ask for TLS with sslmode=verify-full, not ssl=');
  if (!asked.verifyFull) {
    if (asked.mode !== undefined && asked.mode !== 'disable') {
      throw new Error(`sslmode=${asked.mode} is not taken: use sslmode=verify-full (or disable)`);
    }
    if (given || Object.values(asked.files).some((file) => file !== undefined)) {
      throw new Error(
        'TLS files without sslmode=verify-full: add it to the URL to reach PostgreSQL over TLS',
      );
    }
    // Explicitly off: pg would otherwise read PGSSLMODE from the environment.
    return { connectionString: stripped.toString(), ssl: false };
  }
  const files = {
    ca: asked.files.ca ?? tls.ca,
    cert: asked.files.cert ?? tls.cert,
    key: asked.files.key ?? tls.key,
  };
  return { connectionString: stripped.toString(), ssl: clientTlsOptions(files) };
}

export interface PostgresOptions {
  readonly url: string;
  /** With sslmode=verify-full in the URL: the CA (unset: the system's roots) and client certificate. */
  readonly tls?: ClientTlsFiles;
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
              ...postgresClientConfig(options.url, options.tls),
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
