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

  /** Up to `limit` envelopes queued after `afterSequence`, oldest first. */
  async read(
    device: DeviceAddress,
    afterSequence: number,
    limit: number,
  ): Promise<{ items: QueuedItem[]; drained: boolean }> {
    const [queue, messages] = this.keys(device);
    const entries = await this.redis.zrangebyscore(
      queue,
      `(${afterSequence}`,
      '+inf',
      'WITHSCORES',
      'LIMIT',
      0,
      limit + 1,
    );
    const pairs: { guid: string; sequence: number }[] = [];
    for (let i = 0; i < entries.length; i += 2) {
      pairs.push({ guid: entries[i] ?? '', sequence: Number(entries[i + 1]) });
    }
    const page = pairs.slice(0, limit);
    if (page.length === 0) return { items: [], drained: true };
    const bodies = await this.redis.hmgetBuffer(messages, ...page.map((pair) => pair.guid));
    const items: QueuedItem[] = [];
    page.forEach((pair, index) => {
      const envelope = bodies[index];
      // An envelope acknowledged between the two reads is simply gone.
      if (envelope) items.push({ sequence: pair.sequence, guid: pair.guid, envelope });
    });
    return { items, drained: pairs.length <= limit };
  }

  async delete(device: DeviceAddress, guids: readonly string[]): Promise<number> {
    if (guids.length === 0) return 0;
    const [queue, messages] = this.keys(device);
    return (await this.redis.eval(DELETE, 2, queue, messages, ...guids)) as number;
  }
}
