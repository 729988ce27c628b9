import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Test } from '@nestjs/testing';
import type { Pool } from 'pg';
import { Readiness, ReadinessModule } from '@sotto/platform/health';
import {
  createTestDatabase,
  foreignPki,
  identityFiles,
  operatorDatabaseUrl,
  startTcpProxy,
  startTlsImpostor,
  testTls,
} from '@sotto/testing';
import { PG_POOL, PostgresModule, postgresClientConfig, type PostgresOptions } from './index';

describe('PostgresModule', () => {
  const migrationsDir = mkdtempSync(join(tmpdir(), 'sotto-no-migrations-'));
  // What a service presents: its own certificate, and the run's CA for the server's.
  const directory = identityFiles('prekey-directory');
  let databaseUrl: string;

  beforeAll(async () => {
    databaseUrl = await createTestDatabase();
  });

  afterAll(() => rmSync(migrationsDir, { recursive: true, force: true }));

  /** The platform's pool, as a service starts it. */
  async function start(options: Partial<PostgresOptions> & Pick<PostgresOptions, 'url'>) {
    const moduleRef = await Test.createTestingModule({
      imports: [
        ReadinessModule,
        PostgresModule.forRoot({ schema: 'spec', migrationsDir, poolSize: 1, ...options }),
      ],
    }).compile();
    moduleRef.enableShutdownHooks();
    return moduleRef;
  }

  /** The database at another address, keeping the rest of the URL. */
  function at(address: string): string {
    const url = new URL(databaseUrl);
    url.host = address;
    return url.toString();
  }

  it('connects with sslmode=verify-full over TLS 1.3, presenting the service certificate', async () => {
    expect(new URL(databaseUrl).searchParams.get('sslmode')).toBe('verify-full');
    const moduleRef = await start({ url: databaseUrl, tls: directory });
    try {
      const pool = moduleRef.get<Pool>(PG_POOL);
      const { rows } = await pool.query<{ ssl: boolean; version: string; client_dn: string }>(
        'SELECT ssl, version, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
      );
      expect(rows).toEqual([{ ssl: true, version: 'TLSv1.3', client_dn: '/CN=prekey-directory' }]);
      expect(await moduleRef.get(Readiness).report()).toEqual({ ready: true, checks: { postgres: 'ok' } });
    } finally {
      await moduleRef.close();
    }
  });

  it('takes the CA and certificate from the URL too, as libpq writes them', async () => {
    const moduleRef = await start({ url: operatorDatabaseUrl(databaseUrl) });
    try {
      const { rows } = await moduleRef
        .get<Pool>(PG_POOL)
        .query<{ client_dn: string }>('SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
      expect(rows).toEqual([{ client_dn: '/CN=operator' }]);
    } finally {
      await moduleRef.close();
    }
  });

  describe('TLS, attacked', () => {
    it('refuses a server whose certificate is not from its CA, and tells it nothing (no user name)', async () => {
      const impostor = await startTlsImpostor(identityFiles('postgres', await foreignPki()), {
        postgres: true,
      });
      try {
        await expect(start({ url: at(impostor.address), tls: directory })).rejects.toThrow(
          /^(self-signed certificate in certificate chain|unable to verify the first certificate)$/,
        );
        expect([impostor.handshakes, impostor.bytesReceived]).toEqual([0, 0]);
      } finally {
        await impostor.close();
      }
    });

    it('refuses the real server reached by an address its certificate does not name', async () => {
      const proxy = await startTcpProxy(new URL(databaseUrl).host, { listen: '127.0.0.2' });
      try {
        await expect(start({ url: at(proxy.address), tls: directory })).rejects.toThrow(
          "Hostname/IP does not match certificate's altnames: IP: 127.0.0.2 is not in the cert's list",
        );
      } finally {
        await proxy.close();
      }
    });

    it('trusts the system roots, not the CA of the server, unless told to', async () => {
      await expect(start({ url: databaseUrl })).rejects.toThrow(
        'self-signed certificate in certificate chain',
      );
    });

    it('is refused by the server without a client certificate, and in plaintext', async () => {
      await expect(start({ url: databaseUrl, tls: { ca: testTls().ca } })).rejects.toThrow(
        'connection requires a valid client certificate',
      );
      const plaintext = new URL(databaseUrl);
      plaintext.searchParams.set('sslmode', 'disable');
      await expect(start({ url: plaintext.toString() })).rejects.toThrow(
        /no pg_hba\.conf entry for host "127\.0\.0\.1", user "sotto", database "\w+", no encryption/,
      );
    });
  });

  describe('postgresClientConfig', () => {
    const url = 'postgres://u:p@db.internal:5432/sotto';

    it('keeps the URL whole and TLS off without sslmode, even if PGSSLMODE says otherwise', () => {
      expect(postgresClientConfig(url)).toEqual({ connectionString: url, ssl: false });
      expect(postgresClientConfig(`${url}?sslmode=disable`)).toEqual({ connectionString: url, ssl: false });
    });

    it('verifies the server with sslmode=verify-full, taking TLS parameters out of the URL', () => {
      const config = postgresClientConfig(`${url}?application_name=x&sslmode=verify-full`, directory);
      expect(config.connectionString).toBe(`${url}?application_name=x`);
      expect(config.ssl).toEqual({
        ca: expect.stringContaining('-----BEGIN CERTIFICATE-----') as unknown,
        cert: expect.stringContaining('-----BEGIN CERTIFICATE-----') as unknown,
        key: expect.stringContaining('-----BEGIN PRIVATE KEY-----') as unknown,
        rejectUnauthorized: true,
      });
    });

    it('refuses what would connect without verifying, or ignore TLS files', () => {
      expect(() => postgresClientConfig(`${url}?sslmode=require`)).toThrow(
        'sslmode=require is not taken: use sslmode=verify-full (or disable)',
      );
      expect(() => postgresClientConfig(`${url}?ssl=true`)).toThrow('not ssl=');
      expect(() => postgresClientConfig(url, { ca: directory.ca })).toThrow(
        'TLS files without sslmode=verify-full',
      );
      expect(() => postgresClientConfig(`${url}?sslrootcert=${directory.ca}`)).toThrow(
        'TLS files without sslmode=verify-full',
      );
    });
  });
});
