import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { operatorDatabaseUrl, testKafka, testRedis } from '@sotto/testing';

export function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? walk(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}

/**
 * Where the servers keep things: the test harness's Kafka and Redis, the
 * platform's database on its PostgreSQL, and a backup blob directory.
 */
export interface StoredPlaces {
  readonly databaseUrl: string;
  readonly blobDir?: string;
}

/** Every byte the servers keep, to look for plaintext in. */
export async function everythingStored({ databaseUrl, blobDir }: StoredPlaces): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const kafka = testKafka({ clientId: 'plaintext-scan' });
  const consumer = kafka.consumer({ groupId: `scan-${randomUUID()}` });
  const admin = kafka.admin();
  await Promise.all([consumer.connect(), admin.connect()]);
  const offsets = await admin.fetchTopicOffsets('sotto.envelopes.v1');
  const remaining = new Map(
    offsets.filter((o) => o.high !== o.low).map((o) => [o.partition, BigInt(o.high)]),
  );
  await admin.disconnect();
  await consumer.subscribe({ topic: 'sotto.envelopes.v1', fromBeginning: true });
  await new Promise<void>((resolve) => {
    if (remaining.size === 0) resolve();
    void consumer.run({
      eachMessage: async ({ partition, message }) => {
        if (message.value) chunks.push(message.value);
        if (BigInt(message.offset) + 1n >= (remaining.get(partition) ?? 0n)) remaining.delete(partition);
        if (remaining.size === 0) resolve();
        return Promise.resolve();
      },
    });
  });
  await consumer.disconnect();

  const redis = testRedis();
  for (const key of await redis.keys('*')) {
    const dump = await redis.dumpBuffer(key);
    if (dump) chunks.push(dump);
  }
  redis.disconnect();

  const db = new Client({ connectionString: operatorDatabaseUrl(databaseUrl) });
  await db.connect();
  const { rows: tables } = await db.query<{ schema: string; name: string }>(
    "SELECT table_schema AS schema, table_name AS name FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
  );
  for (const table of tables) {
    const { rows } = await db.query<{ row: string }>(
      `SELECT t::text AS row FROM "${table.schema}"."${table.name}" t`,
    );
    for (const row of rows) chunks.push(Buffer.from(row.row));
  }
  await db.end();
  for (const file of blobDir ? walk(blobDir) : []) chunks.push(readFileSync(file));
  return Buffer.concat(chunks);
}
