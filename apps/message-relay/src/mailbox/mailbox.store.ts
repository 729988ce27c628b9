import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import {
  pipelineEach,
  REDIS,
  defineScripts,
  RedisScript,
  whileAvailable,
  WriteDurability,
  type DurabilityOutcome,
  type Redis,
  type WriteDurabilityPolicy,
} from '@sotto/platform/redis';
import { MailboxMetrics } from './mailbox-metrics';

export interface DeviceAddress {
  readonly accountId: string;
  readonly deviceId: number;
}

export interface QueuedItem {
  readonly sequence: number;
  readonly guid: string;
  readonly envelope: Buffer;
}

/** How a mailbox stands against its caps: envelopes queued and their bytes. */
export interface MailboxUsage {
  readonly envelopes: number;
  readonly bytes: number;
}

export interface MailboxOptions {
  /** How long an envelope is kept after it arrived, whatever arrives after it (30 days). */
  readonly envelopeTtlMs: number;
  /** Milliseconds since the epoch; the clock that expiry is measured by. */
  readonly now: () => number;
  /** How durable routed inserts must be before `confirmDurable` says so; unset: as Redis answered. */
  readonly durability?: WriteDurabilityPolicy;
}

export const MAILBOX_OPTIONS = Symbol('MAILBOX_OPTIONS');

// Every script gets the mailbox's five keys: KEYS[1] queue (zset guid by sequence), KEYS[2]
// messages (hash guid -> envelope), KEYS[3] sequence counter, KEYS[4] arrivals (zset guid by
// arrival time), KEYS[5] bytes (the messages' total size). PRUNE is their common prologue: it
// drops envelopes whose own 30 days are over (at most 1000 a call, so no call runs long; the
// rest go on the next), keeping the byte count true. A mailbox's keys expire only when nothing
// has arrived for as long as an envelope lives (and a margin, below), so an idle one costs nothing.
const PRUNE = `
local function prune(cutoff)
  local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', cutoff, 'LIMIT', 0, 1000)
  local freed = 0
  for _, guid in ipairs(expired) do
    freed = freed + redis.call('HSTRLEN', KEYS[2], guid)
    redis.call('HDEL', KEYS[2], guid)
    redis.call('ZREM', KEYS[1], guid)
    redis.call('ZREM', KEYS[4], guid)
  end
  if freed > 0 and redis.call('DECRBY', KEYS[5], freed) < 0 then redis.call('SET', KEYS[5], 0, 'KEEPTTL') end
  return #expired
end
`;

// ARGV: guid, envelope, arrival (ms), expiry cutoff (now - envelope TTL), key TTL (ms), the least
// key TTL an arrival may leave (ms; the envelope TTL). The key TTL is the envelope TTL and a margin,
// and the five keys' expiry is pushed back only once the queue's has fallen below the envelope
// TTL, so a busy mailbox refreshes it about once per margin, not five PEXPIREs (each replicated and
// written to the AOF) per envelope. The five are always refreshed together, and a queue made anew
// (a mailbox drained, then written to) has no TTL, so the queue's stands for all of them.
// Returns {sequence, expired}: the envelope's sequence (0 when it arrived so long ago that it
// has already expired, and is dropped), and how many older envelopes expired meanwhile.
// Inserting a GUID that is already queued changes nothing and returns its sequence:
// redelivery from Kafka after a crash is harmless.
const INSERT = new RedisScript(
  `${PRUNE}
local existing = redis.call('ZSCORE', KEYS[1], ARGV[1])
if existing then return {tonumber(existing), 0} end
local expired = prune(tonumber(ARGV[4]))
if tonumber(ARGV[3]) <= tonumber(ARGV[4]) then return {0, expired} end
local sequence = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[1], sequence, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
redis.call('INCRBY', KEYS[5], #ARGV[2])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[6]) then
  for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
end
return {sequence, expired}
`,
  5,
);

// ARGV: guids. Returns how many were queued.
const DELETE = new RedisScript(
  `
local deleted = 0
local freed = 0
for i = 1, #ARGV do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then deleted = deleted + 1 end
  freed = freed + redis.call('HSTRLEN', KEYS[2], ARGV[i])
  redis.call('HDEL', KEYS[2], ARGV[i])
  redis.call('ZREM', KEYS[4], ARGV[i])
end
if freed > 0 and redis.call('DECRBY', KEYS[5], freed) < 0 then redis.call('SET', KEYS[5], 0, 'KEEPTTL') end
return deleted
`,
  5,
);

// ARGV: expiry cutoff. Returns {envelopes, bytes, expired} after pruning.
const USAGE = new RedisScript(
  `${PRUNE}
local expired = prune(tonumber(ARGV[1]))
return {redis.call('ZCARD', KEYS[1]), tonumber(redis.call('GET', KEYS[5]) or '0'), expired}
`,
  5,
);

// ARGV: after this sequence, at most this many, at most about this many bytes, expiry cutoff.
// Returns {drained, expired, guid1, sequence1, body1, guid2, ...}: envelopes in order, stopping before the one
// that would take the page past the byte budget (but never empty while something is queued);
// drained is 1 when nothing is queued after the last one returned. One script, so an envelope
// acknowledged meanwhile is either in the page whole or not at all.
const READ = new RedisScript(
  `${PRUNE}
local expired = prune(tonumber(ARGV[4]))
local limit = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
local entries = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0, limit + 1)
local page = {1, expired}
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
`,
  5,
);

/**
 * Per-device mailboxes in Redis: ordered, de-duplicated by GUID, each
 * envelope kept 30 days from its arrival. Expired envelopes are dropped by
 * whichever script touches the mailbox next, and counted.
 */
@Injectable()
export class MailboxStore implements OnApplicationShutdown {
  private readonly logger = new Logger(MailboxStore.name);
  /**
   * Routed inserts go over a connection of their own when they must be waited for: WAIT blocks the
   * connection it is sent on (and counts that connection's writes), and reads and acknowledgements
   * must not queue behind it while a replica is slow or down.
   */
  private readonly routing: Redis;
  private readonly durability: WriteDurability;
  /**
   * How long a mailbox's keys live after their expiry was last pushed back: the envelope TTL and a
   * 32nd of it (about 22 hours of 30 days), the margin within which an insert leaves it alone.
   */
  private readonly keyTtlMs: number;

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly metrics: MailboxMetrics,
    @Inject(MAILBOX_OPTIONS) private readonly options: MailboxOptions,
  ) {
    this.keyTtlMs = options.envelopeTtlMs + Math.ceil(options.envelopeTtlMs / 32);
    const policy = options.durability ?? { level: 'none', replicas: 0, timeoutMs: 0 };
    this.routing = policy.level === 'none' ? redis : redis.duplicate();
    // A duplicate starts with no scripts: define them all before it runs anything (see defineScripts).
    if (this.routing !== redis) defineScripts(this.routing);
    if (this.routing !== redis) {
      this.routing.on('error', (error: Error) => this.logger.warn(`routing connection: ${error.message}`));
    }
    this.durability = new WriteDurability(this.routing, policy, (node, version) =>
      this.logger.warn(
        `Redis ${version} at ${node} has no WAITAOF (7.2+): routed mail waits for replicas by WAIT, and is on the master's disk only with appendfsync always`,
      ),
    );
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.routing === this.redis) return;
    await this.routing.quit().catch(() => {
      this.routing.disconnect();
    });
  }

  // The device in braces: on Redis Cluster a mailbox's keys share a slot.
  private keys(device: DeviceAddress): [string, string, string, string, string] {
    const base = `sotto:mailbox:{${device.accountId}:${device.deviceId}}`;
    return [`${base}:queue`, `${base}:messages`, `${base}:sequence`, `${base}:arrivals`, `${base}:bytes`];
  }

  /** Envelopes that arrived at or before this instant have expired. */
  private cutoff(): number {
    return this.options.now() - this.options.envelopeTtlMs;
  }

  /**
   * Inserts many envelopes in one round trip; returns each one's sequence
   * number, 0 for one that arrived (`arrivedAtMs`) too long ago to keep.
   */
  insertMany(
    items: readonly { device: DeviceAddress; guid: string; envelope: Uint8Array; arrivedAtMs: number }[],
  ): Promise<number[]> {
    // Redis in a failover answers UNAVAILABLE, so callers (and Kafka's redelivery) try again.
    return whileAvailable('mailboxes', () => this.insertManyNow(items));
  }

  private async insertManyNow(
    items: readonly { device: DeviceAddress; guid: string; envelope: Uint8Array; arrivedAtMs: number }[],
  ): Promise<number[]> {
    if (items.length === 0) return [];
    const cutoff = this.cutoff();
    INSERT.prepare(this.routing);
    // One pipeline per Redis Cluster master: a device's keys share a slot, devices do not.
    const results = await pipelineEach(
      this.routing,
      items,
      (item) => this.keys(item.device)[0],
      (pipeline, item) => {
        INSERT.addTo(pipeline, this.keys(item.device), [
          item.guid,
          Buffer.from(item.envelope.buffer, item.envelope.byteOffset, item.envelope.byteLength),
          item.arrivedAtMs,
          cutoff,
          this.keyTtlMs,
          this.options.envelopeTtlMs,
        ]);
      },
    );
    let expired = 0;
    const sequences = results.map(([error, reply]) => {
      if (error) throw error;
      const [sequence, pruned] = reply as [number, number];
      expired += pruned + (sequence === 0 ? 1 : 0);
      return sequence;
    });
    this.metrics.expired(expired);
    return sequences;
  }

  /**
   * Waits until what `insertMany` wrote into these devices' mailboxes is durable by the policy
   * (MAILBOX_DURABILITY): on every master holding one of them, WAIT or WAITAOF. Not durable in time
   * means a caller must not build on the writes yet; writing them again is harmless.
   */
  confirmDurable(devices: readonly DeviceAddress[]): Promise<DurabilityOutcome> {
    return this.durability.confirm(devices.map((device) => this.keys(device)[0]));
  }

  /** How full each device's mailbox is, after dropping what expired; one round trip. */
  usage(devices: readonly DeviceAddress[]): Promise<MailboxUsage[]> {
    return whileAvailable('mailboxes', () => this.usageNow(devices));
  }

  private async usageNow(devices: readonly DeviceAddress[]): Promise<MailboxUsage[]> {
    if (devices.length === 0) return [];
    const cutoff = this.cutoff();
    USAGE.prepare(this.redis);
    const results = await pipelineEach(
      this.redis,
      devices,
      (device) => this.keys(device)[0],
      (pipeline, device) => {
        USAGE.addTo(pipeline, this.keys(device), [cutoff]);
      },
    );
    let expired = 0;
    const usage = results.map(([error, reply]) => {
      if (error) throw error;
      const [envelopes, bytes, pruned] = reply as [number, number, number];
      expired += pruned;
      return { envelopes, bytes };
    });
    this.metrics.expired(expired);
    return usage;
  }

  /**
   * Up to `limit` envelopes queued after `afterSequence`, oldest first, and
   * no more than about `maxBytes` of them: the page ends before the envelope
   * that would take it past `maxBytes`, but holds at least one if any is queued.
   * Nothing expired is in it.
   */
  read(
    device: DeviceAddress,
    afterSequence: number,
    limit: number,
    maxBytes: number,
  ): Promise<{ items: QueuedItem[]; drained: boolean }> {
    return whileAvailable('mailboxes', () => this.readNow(device, afterSequence, limit, maxBytes));
  }

  private async readNow(
    device: DeviceAddress,
    afterSequence: number,
    limit: number,
    maxBytes: number,
  ): Promise<{ items: QueuedItem[]; drained: boolean }> {
    // As Buffers: the envelopes are binary.
    const reply = (await READ.runBuffer(this.redis, this.keys(device), [
      afterSequence,
      limit,
      maxBytes,
      this.cutoff(),
    ])) as [number, number, ...Buffer[]];
    const [drained, expired, ...flat] = reply;
    this.metrics.expired(expired);
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
    return whileAvailable(
      'mailboxes',
      async () => (await DELETE.run(this.redis, this.keys(device), guids)) as number,
    );
  }
}
