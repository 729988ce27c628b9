import { Client } from 'pg';
import { startPostgres } from './postgres';
import { isGone, tempDir } from './test-support';

async function withClient<T>(url: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

describe('startPostgres', () => {
  const tmp = tempDir('postgres');
  afterAll(() => tmp.cleanup());

  it('keeps rows across a restart and stops cleanly', async () => {
    const first = await startPostgres({ dataDir: tmp.dir });
    expect(first.url).toMatch(/^postgres:\/\/sotto@127\.0\.0\.1:\d+\/sotto$/);
    await withClient(first.url, async (c) => {
      await c.query('create table notes (id int primary key, body text not null)');
      await c.query("insert into notes values (1, 'persisted')");
    });
    await first.stop();
    expect(isGone(first.pid)).toBe(true);

    const second = await startPostgres({ dataDir: tmp.dir });
    try {
      const rows = await withClient(second.url, (c) => c.query('select body from notes where id = 1'));
      expect(rows.rows).toEqual([{ body: 'persisted' }]);
    } finally {
      await second.stop();
      await second.stop(); // idempotent
    }
    expect(isGone(second.pid)).toBe(true);
  });
});
