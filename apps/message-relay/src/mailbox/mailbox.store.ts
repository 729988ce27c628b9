import { Inject, Injectable } from '@nestjs/common';
import { REDIS, type Redis } from '@sotto/platform/redis';

export interface DeviceAddress {
  readonly accountId: string;
  readonly deviceId: number;
}

export interface QueuedItem {
  readonly sequence: number;
  readonly guid: string;
  readonly envelope: Buffer;
}

/** Mailboxes keep undelivered envelopes this long after the last one arrived. */
export const MAILBOX_TTL_MS = 30 * 24 * 60 * 60 * 1000;

// KEYS: queue (zset guid by sequence), messages (hash guid -> envelope), sequence counter.
// Inserting a GUID that is already queued changes nothing and returns its sequence:
// redelivery from Kafka after a crash is harmless.
const INSERT = `
local existing = redis.call('ZSCORE', KEYS[1], ARGV[1])
if existing then return tonumber(existing) end
local sequence = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[1], sequence, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
return sequence
`;

const DELETE = `
local deleted = 0
for i = 1, #ARGV do
  deleted = deleted + redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('HDEL', KEYS[2], ARGV[i])
end
return deleted
`;

// KEYS: queue, messages. ARGV: after this sequence, at most this many, at most about this many bytes.
// Returns {drained, guid1, sequence1, body1, guid2, ...}: envelopes in order, stopping before the one
// that would take the page past the byte budget (but never empty while something is queued);
// drained is 1 when nothing is queued after the last one returned. One script, so an envelope
// acknowledged meanwhile is either in the page whole or not at all.
const READ = `
local limit = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
local entries = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0, limit + 1)
local page = {1}
local count = 0
local bytes = 0
for i = 1, #entries, 2 do
  local body = redis.call('HGET', KEYS[2], entries[i])
  if body then
    if count == limit or (count > 0 and bytes + #body > budget) then
      page[1] = 0
      break
    end
    count = count + 1
    bytes = bytes + #body
    page[#page + 1] = entries[i]
    page[#page + 1] = entries[i + 1]
    page[#page + 1] = body
  end
end
-- A full fetch may hide more behind it: only a short one proves the mailbox drained.
if #entries > 2 * limit then page[1] = 0 end
return page
`;

/** Per-device mailboxes in Redis: ordered, de-duplicated by GUID, expiring after 30 days. */
@Injectable()
export class MailboxStore {
  constructor(@Inject(REDIS) private readonly redis: Redis) {}

  // The device in braces: on Redis Cluster a mailbox's three keys share a slot.
  private keys(device: DeviceAddress): [string, string, string] {
    const base = `sotto:mailbox:{${device.accountId}:${device.deviceId}}`;
    return [`${base}:queue`, `${base}:messages`, `${base}:sequence`];
  }

  /** Inserts many envelopes in one round trip; returns each one's sequence number. */
  async insertMany(
    items: readonly { device: DeviceAddress; guid: string; envelope: Uint8Array }[],
  ): Promise<number[]> {
    if (items.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const item of items) {
      pipeline.eval(
        INSERT,
        3,
        ...this.keys(item.device),
        item.guid,
        Buffer.from(item.envelope),
        MAILBOX_TTL_MS,
      );
    }
    const results = (await pipeline.exec()) ?? [];
    return results.map(([error, sequence]) => {
      if (error) throw error;
      return Number(sequence);
    });
  }

  /**
   * Up to `limit` envelopes queued after `afterSequence`, oldest first, and
   * no more than about `maxBytes` of them: the page ends before the envelope
   * that would take it past `maxBytes`, but holds at least one if any is queued.
   */
  async read(
    device: DeviceAddress,
    afterSequence: number,
    limit: number,
    maxBytes: number,
  ): Promise<{ items: QueuedItem[]; drained: boolean }> {
    const [queue, messages] = this.keys(device);
    // As Buffers: the envelopes are binary.
    const reply = (await this.redis.callBuffer(
      'EVAL',
      READ,
      2,
      queue,
      messages,
      afterSequence,
      limit,
      maxBytes,
    )) as [number, ...Buffer[]];
    const [drained, ...flat] = reply;
    const items: QueuedItem[] = [];
    for (let i = 0; i + 2 < flat.length; i += 3) {
      const [guid, sequence, envelope] = [flat[i], flat[i + 1], flat[i + 2]];
      if (guid && sequence && envelope) {
        items.push({ guid: guid.toString(), sequence: Number(sequence.toString()), envelope });
      }
    }
    return { items, drained: drained === 1 };
  }

  async delete(device: DeviceAddress, guids: readonly string[]): Promise<number> {
    if (guids.length === 0) return 0;
    const [queue, messages] = this.keys(device);
    return (await this.redis.eval(DELETE, 2, queue, messages, ...guids)) as number;
  }
}
