import { Cluster, type ChainableCommander } from 'ioredis';
import { DependencyUnavailableError } from '@sotto/platform/grpc';
import type { Redis } from './redis.module';

/** Redis Cluster's hash slots: CRC16 (XMODEM) of the key, or of its hash tag, modulo 16384. */
export const SLOTS = 16_384;

const TABLE = Array.from({ length: 256 }, (_, byte) => {
  let crc = byte << 8;
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  return crc;
});

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ (TABLE[((crc >> 8) ^ byte) & 0xff] ?? 0);
  return crc;
}

/**
 * The slot of a key (or a sharded pub/sub channel), as Redis Cluster computes it: when the key holds
 * `{tag}` with a non-empty tag, only the tag is hashed, so keys sharing a tag share a slot.
 */
export function keySlot(key: string): number {
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  return crc16(Buffer.from(key, 'utf8')) % SLOTS;
}

/**
 * Items grouped so that each group's keys may go in one multi-key script or command: on one server,
 * all of them in one group; on a cluster, one group per slot. Each group keeps the items' order.
 */
export function groupBySlot<T>(redis: Redis, items: readonly T[], keyOf: (item: T) => string): T[][] {
  if (!(redis instanceof Cluster)) return items.length === 0 ? [] : [[...items]];
  const groups = new Map<number, T[]>();
  for (const item of items) {
    const slot = keySlot(keyOf(item));
    const group = groups.get(slot);
    if (group === undefined) groups.set(slot, [item]);
    else group.push(item);
  }
  return [...groups.values()];
}

/**
 * One command per item, in as few round trips as the deployment allows: on one server a single
 * pipeline; on a cluster one pipeline per master (ioredis refuses a pipeline whose keys live on
 * several), sent at once. Answers each item's [error, reply] in the items' order. `keyOf` names the
 * key (or the channel) the item's command is routed by.
 */
export async function pipelineEach<T>(
  redis: Redis,
  items: readonly T[],
  keyOf: (item: T) => string,
  add: (pipeline: ChainableCommander, item: T) => void,
): Promise<[Error | null, unknown][]> {
  if (items.length === 0) return [];
  const groups = new Map<string, number[]>();
  items.forEach((item, index) => {
    const owner = redis instanceof Cluster ? ownerOf(redis, keySlot(keyOf(item))) : '';
    const group = groups.get(owner);
    if (group === undefined) groups.set(owner, [index]);
    else group.push(index);
  });
  const results: [Error | null, unknown][] = new Array<[Error | null, unknown]>(items.length);
  const send = async (indices: number[]): Promise<void> => {
    const pipeline = redis.pipeline();
    for (const index of indices) add(pipeline, items[index]);
    const replies = (await pipeline.exec()) ?? [];
    indices.forEach((index, position) => {
      results[index] = replies[position] ?? [new Error('no reply from Redis'), null];
    });
  };
  await Promise.all([...groups.values()].map(send));
  // While a slot migrates, the old owner answers ASK for the keys already moved (and MOVED once the
  // move is over) but serves the others: ioredis follows a pipeline's redirection only when every
  // command in it got the same one. A redirected command was not run, so each is sent again on its
  // own, where ioredis follows it. So is a script answered NOSCRIPT: ioredis re-sends a redirected
  // pipeline's EVALSHA as it was, to a node that may never have seen the script; alone, it goes as EVAL.
  const redirected = results.flatMap(([error], index) =>
    error && REDIRECTION.test(error.message) ? [index] : [],
  );
  await Promise.all(redirected.map((index) => send([index])));
  return results;
}

const REDIRECTION = /^(ASK |MOVED |NOSCRIPT)/;

/** The master serving a slot, as the client last learned it; the slot itself when it does not know yet. */
function ownerOf(cluster: Cluster, slot: number): string {
  return cluster.slots[slot]?.[0] ?? `slot ${slot}`;
}

/** Replies that mean the cluster is between states (a failover, a resharding, a restart), not a bug. */
const OUTAGE_REPLIES = /^(CLUSTERDOWN|TRYAGAIN|LOADING|MASTERDOWN|READONLY)\b/;

/** Whether an error from a Redis call is a bug in the command (an error reply that is no outage). */
export function isCommandError(error: unknown): boolean {
  const { name, message } = error instanceof Error ? error : new Error(String(error));
  return name === 'ReplyError' && !OUTAGE_REPLIES.test(message);
}

/**
 * Runs a Redis call; an outage (no connection, too many redirections while a failover settles, a
 * cluster that says it is down) becomes DependencyUnavailableError, which services answer with
 * UNAVAILABLE so clients try again. Any other error reply is a bug in the command and stays as it is.
 */
export async function whileAvailable<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof DependencyUnavailableError || isCommandError(error)) throw error;
    throw new DependencyUnavailableError(
      what,
      `Redis failed: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}
