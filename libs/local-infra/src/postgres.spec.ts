import { join } from 'node:path';
import { Client, type ClientConfig } from 'pg';
import { clientTlsOptions, prepareLocalPki } from '@sotto/platform/tls';
import { startPostgres } from './postgres';
import { isGone, tempDir } from './test-support';

async function withClient<T>(config: string | ClientConfig, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client(typeof config === 'string' ? { connectionString: config } : config);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** How connecting ends: "connected", or the error. */
async function connectOnce(config: ClientConfig): Promise<string> {
  const client = new Client(config);
  client.on('error', () => undefined);
  try {
    await client.connect();
    return 'connected';
  } catch (error) {
    return (error as Error).message;
  } finally {
    await client.end().catch(() => undefined);
  }
}

describe('startPostgres', () => {
  const tmp = tempDir('postgres');
  afterAll(() => tmp.cleanup());

  it('keeps rows across a restart, with mutual TLS only on the second start, and stops cleanly', async () => {
    const first = await startPostgres({ dataDir: tmp.dir });
    expect(first.url).toMatch(/^postgres:\/\/sotto@127\.0\.0\.1:\d+\/sotto$/);
    await withClient(first.url, async (c) => {
      await c.query('create table notes (id int primary key, body text not null)');
      await c.query("insert into notes values (1, 'persisted')");
    });
    await first.stop();
    expect(isGone(first.pid)).toBe(true);

    const pki = await prepareLocalPki({
      dir: join(tmp.dir, 'pki'),
      servers: ['postgres'],
      clients: ['client'],
    });
    const identity = (name: string) => ({ ca: pki.ca, ...pki.identities[name] });
    const second = await startPostgres({
      dataDir: tmp.dir,
      tls: { ca: pki.ca, identity: identity('postgres') },
    });
    try {
      expect(second.url).toMatch(/^postgres:\/\/sotto@127\.0\.0\.1:\d+\/sotto\?sslmode=verify-full$/);
      expect(second.ca).toBe(pki.ca);
      const { hostname, port } = new URL(second.url);
      const server = { host: hostname, port: Number(port), user: 'sotto', database: 'sotto' };
      const rows = await withClient({ ...server, ssl: clientTlsOptions(identity('client')) }, (c) =>
        c.query(
          'select body, (select version from pg_stat_ssl where pid = pg_backend_pid()) as tls from notes where id = 1',
        ),
      );
      expect(rows.rows).toEqual([{ body: 'persisted', tls: 'TLSv1.3' }]);
      // Nothing in plaintext, nothing without a certificate of the CA.
      expect(await connectOnce({ ...server, ssl: false })).toMatch(/no pg_hba\.conf entry .*no encryption/);
      expect(await connectOnce({ ...server, ssl: clientTlsOptions({ ca: pki.ca }) })).toMatch(
        /connection requires a valid client certificate/,
      );
    } finally {
      await second.stop();
      await second.stop(); // idempotent
    }
    expect(isGone(second.pid)).toBe(true);
  });
});
