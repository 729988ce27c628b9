import type { ClientBase, Pool, PoolClient } from 'pg';

async function transaction<C extends ClientBase, T>(
  client: C,
  work: (client: C) => Promise<T>,
  onUnusable: (error: unknown) => void,
): Promise<T> {
  await client.query('BEGIN').catch((error: unknown) => {
    onUnusable(error);
    throw error;
  });
  try {
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    // The caller wants the error that stopped the work, not one about the rollback after it.
    await client.query('ROLLBACK').catch(onUnusable);
    throw error;
  }
}

/**
 * Runs `work` in one transaction on a client of the pool: committed if it
 * resolves, rolled back if it or the commit throws, and that error passed on
 * as it is. The client goes back to the pool, unless it could not even begin
 * or roll back, or its connection died: then it is discarded.
 */
export async function inTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let unusable: Error | undefined;
  const onUnusable = (error: unknown): void => {
    // release() takes an Error, and discards a client released with one.
    unusable = error instanceof Error ? error : new Error(String(error));
  };
  // The pool stops listening while a client is out: without this, a connection
  // that dies mid-transaction would be an unhandled 'error' event, and fatal.
  client.on('error', onUnusable);
  try {
    return await transaction(client, work, onUnusable);
  } finally {
    client.removeListener('error', onUnusable);
    client.release(unusable);
  }
}

/** The same on a client the caller holds (one with a session lock, say), which stays the caller's. */
export function inTransactionOn<C extends ClientBase, T>(
  client: C,
  work: (client: C) => Promise<T>,
): Promise<T> {
  return transaction(client, work, () => undefined);
}
