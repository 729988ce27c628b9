import { Pool } from 'pg';
import { createTestDatabase, identityFiles } from '@sotto/testing';
import { inTransaction, inTransactionOn, postgresClientConfig } from './index';

describe('transactions', () => {
  let pool: Pool;

  beforeAll(async () => {
    // As a service connects: over TLS, with its own certificate.
    pool = new Pool({
      ...postgresClientConfig(await createTestDatabase(), identityFiles('key-vault')),
      max: 2,
    });
    await pool.query('CREATE TABLE notes (id integer PRIMARY KEY)');
    await pool.query(
      'CREATE TABLE deferred (id integer, CONSTRAINT one_each UNIQUE (id) DEFERRABLE INITIALLY DEFERRED)',
    );
  });

  afterAll(() => pool.end());

  beforeEach(() => pool.query('TRUNCATE notes, deferred'));

  /** Every client went back to the pool (or was discarded): none is held. */
  const expectNoClientHeld = (): void => {
    expect(pool.idleCount).toBe(pool.totalCount);
  };

  const notes = async (): Promise<number[]> =>
    (await pool.query<{ id: number }>('SELECT id FROM notes ORDER BY id')).rows.map((row) => row.id);

  describe('inTransaction', () => {
    it('commits what the work did and returns its result', async () => {
      const result = await inTransaction(pool, async (client) => {
        await client.query('INSERT INTO notes VALUES (1), (2)');
        return 'done';
      });
      expect(result).toBe('done');
      expect(await notes()).toEqual([1, 2]);
      expectNoClientHeld();
    });

    it('keeps the work invisible to others until it commits', async () => {
      await inTransaction(pool, async (client) => {
        await client.query('INSERT INTO notes VALUES (1)');
        expect(await notes()).toEqual([]);
      });
      expect(await notes()).toEqual([1]);
      expectNoClientHeld();
    });

    it('rolls back when the work throws, and passes that very error on', async () => {
      const thrown = new Error('changed my mind');
      const running = inTransaction(pool, async (client) => {
        await client.query('INSERT INTO notes VALUES (1)');
        throw thrown;
      });
      await expect(running).rejects.toBe(thrown);
      expect(await notes()).toEqual([]);
      expectNoClientHeld();
    });

    it('rolls back when a statement fails, with the database error', async () => {
      const running = inTransaction(pool, async (client) => {
        await client.query('INSERT INTO notes VALUES (1)');
        await client.query('INSERT INTO notes VALUES (1)');
      });
      await expect(running).rejects.toMatchObject({ code: '23505' });
      expect(await notes()).toEqual([]);
      expectNoClientHeld();
    });

    it('rolls back when the commit fails', async () => {
      const running = inTransaction(pool, async (client) => {
        await client.query('INSERT INTO deferred VALUES (7), (7)');
      });
      await expect(running).rejects.toMatchObject({ code: '23505', constraint: 'one_each' });
      expect((await pool.query('SELECT count(*)::integer AS n FROM deferred')).rows).toEqual([{ n: 0 }]);
      expectNoClientHeld();
    });

    it('survives its connection dying, discards that client, and reports the work’s error', async () => {
      const released: unknown[] = [];
      pool.on('release', (error) => released.push(error));
      const running = inTransaction(pool, async (client) => {
        await client.query('INSERT INTO notes VALUES (1)');
        await client.query('SELECT pg_terminate_backend(pg_backend_pid())');
      });
      await expect(running).rejects.toThrow('terminating connection due to administrator command');
      pool.removeAllListeners('release');
      // Released with an error, the pool closes the client instead of handing it out again.
      expect(released).toEqual([expect.any(Error)]);
      expect(await notes()).toEqual([]);
      expectNoClientHeld();
    });

    it('releases its client every time, so a small pool never runs dry', async () => {
      for (let round = 0; round < 5; round += 1) {
        await inTransaction(pool, (client) => client.query('INSERT INTO notes VALUES ($1)', [round]));
        await expect(inTransaction(pool, () => Promise.reject(new Error('no')))).rejects.toThrow('no');
      }
      expect(await notes()).toEqual([0, 1, 2, 3, 4]);
      expectNoClientHeld();
    });
  });

  describe('inTransactionOn', () => {
    it('commits or rolls back on the caller’s client and leaves it with the caller', async () => {
      const client = await pool.connect();
      try {
        await inTransactionOn(client, (tx) => tx.query('INSERT INTO notes VALUES (1)'));
        await expect(
          inTransactionOn(client, async (tx) => {
            await tx.query('INSERT INTO notes VALUES (2)');
            throw new Error('not this one');
          }),
        ).rejects.toThrow('not this one');
        expect(await notes()).toEqual([1]);
        // Still the caller's, and outside any transaction: what it writes now is seen at once.
        await client.query('INSERT INTO notes VALUES (3)');
        expect(await notes()).toEqual([1, 3]);
      } finally {
        client.release();
      }
      expectNoClientHeld();
    });
  });
});
