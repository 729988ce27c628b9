import { Logger } from '@nestjs/common';
import { SameTurnBatch } from '@sotto/platform/batching';
import { subscribe, type Subscription } from './pubsub';
import type { Redis } from './redis.module';

/** Where an answer came from: the cache, or a read of the source. */
export type CacheSource = 'cache' | 'read';

export interface InvalidatedCacheOptions<V> {
  /** What is cached, for log lines: "device-list". */
  readonly what: string;
  /** The channel whose notices name the keys whose answers changed at the source. */
  readonly channel: string;
  /** The subscription's connection name (CLIENT LIST). */
  readonly subscriber: string;
  /** How long an answer is trusted; 0 turns the cache off (nothing is kept or subscribed). */
  readonly ttlMs: number;
  /** Most keys kept; the least recently used go first. */
  readonly maxEntries: number;
  /** The key a notice names; throws for a notice it cannot decode (which is logged and ignored). */
  readonly keyOf: (notice: Buffer) => string;
  /**
   * Reads these keys from the source, answering in their order: undefined
   * where it has nothing, which is not kept (the next lookup reads again).
   */
  readonly read: (keys: string[]) => Promise<readonly (V | undefined)[]>;
  /** The clock answers expire by; Date.now unless a test turns it. */
  readonly now?: () => number;
}

interface Entry<V> {
  readonly value: V;
  readonly expiresAtMs: number;
}

/** A read of the source under way; once `stale`, what it answers is not kept. */
interface Read<V> {
  readonly value: Promise<V | undefined>;
  stale: boolean;
}

/**
 * Answers from a source (another service) cached in this process, kept
 * current by notices over Redis pub/sub: the source publishes the key of every
 * committed change on `channel`, and the cache drops that key's answer as the
 * notice arrives. What it guarantees:
 *
 * - A read under way when its key's notice arrives answers its callers but is
 *   not kept, as it may predate the change; nor is a read that a later
 *   `fresh` one superseded.
 * - Pub/sub delivers at most once, so while the subscription is down (and
 *   before `start`, and with `ttlMs` 0) every lookup reads the source and
 *   nothing is kept; once it is back the cache starts empty.
 * - Answers also expire after `ttlMs`, which bounds what a lost publish
 *   costs, and at most `maxEntries` keys are kept, the least recently used
 *   going first.
 * - The keys missed in one turn of the event loop are read together, in one
 *   call of `read`, and a lookup of a key whose read is under way (and not
 *   stale) waits for it instead of reading again.
 */
export class InvalidatedCache<V> {
  private readonly logger: Logger;
  // In least-recently-used order: a hit moves its entry to the end.
  private readonly entries = new Map<string, Entry<V>>();
  /** The newest read of each key under way. */
  private readonly reads = new Map<string, Read<V>>();
  private readonly batch: SameTurnBatch<string, V | undefined>;
  /** False while notices may be missed: every lookup reads the source. */
  private listening = false;
  private subscription?: Subscription;
  private readonly now: () => number;

  constructor(
    private readonly redis: Redis,
    private readonly options: InvalidatedCacheOptions<V>,
  ) {
    this.logger = new Logger(`${options.what} cache`);
    this.now = options.now ?? Date.now;
    this.batch = new SameTurnBatch((keys: string[]) => options.read(keys));
  }

  /**
   * Subscribes to the channel, unless the cache is off; the cache is used
   * from then on. Rejects if the first subscription cannot be made.
   */
  async start(): Promise<void> {
    if (this.options.ttlMs === 0 || this.subscription !== undefined) return;
    const { what } = this.options;
    this.subscription = await subscribe(this.redis, this.options.channel, {
      name: this.options.subscriber,
      onMessage: (notice) => this.received(notice),
      onDown: () => this.suspend(),
      onUp: () => {
        this.listening = true;
        this.logger.log(`${what} channel back; the ${what} cache starts empty`);
      },
    });
    this.listening = true;
  }

  async close(): Promise<void> {
    this.listening = false;
    await this.subscription?.close();
  }

  /**
   * The key's answer: from the cache when it holds it, else from the source
   * (one read for every lookup that misses in this turn). `fresh` always
   * reads, and joins no read that started earlier.
   */
  async get(key: string, fresh = false): Promise<{ value: V | undefined; source: CacheSource }> {
    if (!fresh && this.listening) {
      const entry = this.entries.get(key);
      if (entry !== undefined && entry.expiresAtMs > this.now()) {
        this.entries.delete(key);
        this.entries.set(key, entry);
        return { value: entry.value, source: 'cache' };
      }
    }
    return { value: await this.read(key, fresh), source: 'read' };
  }

  /** Each key's answer, in their order: those the cache misses are read together. */
  getMany(keys: readonly string[]): Promise<{ value: V | undefined; source: CacheSource }[]> {
    return Promise.all(keys.map((key) => this.get(key)));
  }

  /** How many keys the cache holds now. */
  get size(): number {
    return this.entries.size;
  }

  /** Forgets the key's answer, and keeps a read of it under way from being kept. */
  invalidate(key: string): void {
    this.entries.delete(key);
    const pending = this.reads.get(key);
    if (pending !== undefined) pending.stale = true;
  }

  private read(key: string, fresh: boolean): Promise<V | undefined> {
    const pending = this.reads.get(key);
    if (pending !== undefined) {
      if (!fresh && !pending.stale) return pending.value;
      // The read about to start answers later than this one: this one's answer may be the older.
      pending.stale = true;
    }
    const read: Read<V> = {
      stale: !this.listening,
      value: this.batch.add([key]).then(([value]) => value),
    };
    this.reads.set(key, read);
    const settle = (): void => {
      if (this.reads.get(key) === read) this.reads.delete(key);
    };
    read.value.then((value) => {
      settle();
      if (value !== undefined && !read.stale && this.listening) this.store(key, value);
    }, settle);
    return read.value;
  }

  private store(key: string, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, { value, expiresAtMs: this.now() + this.options.ttlMs });
    while (this.entries.size > this.options.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.entries.delete(oldest.value);
    }
  }

  private received(notice: Buffer): void {
    let key: string;
    try {
      key = this.options.keyOf(notice);
    } catch {
      this.logger.warn(`ignoring an undecodable ${this.options.what} change`);
      return;
    }
    this.invalidate(key);
  }

  private suspend(): void {
    if (!this.listening) return;
    this.listening = false;
    this.entries.clear();
    for (const pending of this.reads.values()) pending.stale = true;
    this.logger.warn(`${this.options.what} channel down: every lookup reads the source until it is back`);
  }
}
