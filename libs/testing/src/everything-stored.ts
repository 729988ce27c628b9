import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { envelopesTopic, multiRecipientTopic } from '@sotto/contracts';
import { topicRecords } from './kafka-records';
import { operatorDatabaseUrl, testRedis } from './storage';

export function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? walk(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}

/**
 * Where the servers keep things: the test harness's Kafka (both envelope
 * topics: one-to-one envelopes and multi-recipient group messages) and Redis, the
 * platform's database on its PostgreSQL, and a backup blob directory.
 */
export interface StoredPlaces {
  readonly databaseUrl: string;
  readonly blobDir?: string;
}

/** Every byte the servers keep, to look for plaintext in. */
export async function everythingStored(places: StoredPlaces): Promise<Buffer> {
  return Buffer.concat(await storedPieces(places));
}

/**
 * What the servers keep that holds `marker` (e.g. an envelope's GUID), piece
 * by piece: each Kafka record (key, value and headers), each Redis key (its
 * name and value), each PostgreSQL row, each blob. To show what is kept of
 * one envelope, beside everything else.
 */
export async function storedHolding(places: StoredPlaces, marker: string): Promise<Buffer[]> {
  return (await storedPieces(places)).filter((piece) => piece.includes(marker));
}

/**
 * A Redis key's contents as stored, uncompressed: one piece per hash field,
 * list element or set member (each with the key's name), so that what one
 * envelope in a mailbox holds can be told from what its neighbours hold.
 */
async function redisPieces(redis: ReturnType<typeof testRedis>, key: string): Promise<Buffer[]> {
  const name = Buffer.from(key);
  const keyed = (parts: Buffer[]) => parts.map((part) => Buffer.concat([name, part]));
  switch (await redis.type(key)) {
    case 'hash': {
      const fields = await redis.hgetallBuffer(key);
      return keyed(
        Object.entries(fields).map(([field, value]) => Buffer.concat([Buffer.from(field), value])),
      );
    }
    case 'list':
      return keyed(await redis.lrangeBuffer(key, 0, -1));
    case 'set':
      return keyed(await redis.smembersBuffer(key));
    case 'zset':
      return keyed(await redis.zrangeBuffer(key, 0, -1));
    case 'string': {
      const value = await redis.getBuffer(key);
      return value ? keyed([value]) : [];
    }
    default: {
      const dump = await redis.dumpBuffer(key);
      return dump ? keyed([dump]) : [];
    }
  }
}

/**
 * Each piece of what Redis keeps under the keys matching `pattern` (every
 * key by default), as `redisPieces` reads it: uncompressed, unlike DUMP,
 * whose compression could hide what a probe looks for.
 */
export async function redisStored(pattern = '*'): Promise<Buffer[]> {
  const redis = testRedis();
  try {
    const pieces: Buffer[] = [];
    for (const key of await redis.keys(pattern)) pieces.push(...(await redisPieces(redis, key)));
    return pieces;
  } finally {
    redis.disconnect();
  }
}

/** What Redis keeps that holds `marker` (e.g. an envelope's GUID), piece by piece. */
export async function redisHolding(marker: string): Promise<Buffer[]> {
  return (await redisStored()).filter((piece) => piece.includes(marker));
}

/**
 * The ways an account id can be written down, to look for in what the
 * servers keep where it must not be: its text, lower and upper case, with
 * and without dashes; its 16 bytes; and those bytes in base64 and base64url.
 * The base64 forms leave out the last character, which encodes bits of
 * whatever follows the bytes when they stand within longer data.
 */
export function accountIdForms(accountId: string): Buffer[] {
  const hex = accountId.replace(/-/g, '');
  const raw = Buffer.from(hex, 'hex');
  if (raw.length !== 16) throw new Error(`not an account id: ${accountId}`);
  const texts = [accountId, hex].flatMap((text) => [text.toLowerCase(), text.toUpperCase()]);
  const base64 = [raw.toString('base64'), raw.toString('base64url')].map((text) => text.slice(0, 21));
  return [...new Set([...texts, ...base64])].map((text) => Buffer.from(text)).concat(raw);
}

/** Each record of the topic from the beginning: key, value and headers (names and values). */
async function kafkaPieces(topic: string): Promise<Buffer[]> {
  return (await topicRecords(topic)).map((record) =>
    Buffer.concat([
      record.key,
      record.value,
      ...Object.entries(record.headers).flatMap(([name, value]) => [Buffer.from(name), value]),
    ]),
  );
}

async function storedPieces({ databaseUrl, blobDir }: StoredPlaces): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for (const topic of [envelopesTopic.TOPIC, multiRecipientTopic.TOPIC])
    chunks.push(...(await kafkaPieces(topic)));

  chunks.push(...(await redisStored()));

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
  return chunks;
}
