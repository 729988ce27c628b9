import { Logger } from '@nestjs/common';
import { Cluster, Redis as Server } from 'ioredis';
import type { Redis } from './redis.module';
import { keySlot, pipelineEach } from './slots';

/**
 * Pub/sub that works the same on one Redis server and on a Redis Cluster. On a
 * server it is classic PUBLISH/SUBSCRIBE. On a cluster it is sharded pub/sub
 * (SPUBLISH/SSUBSCRIBE): a channel lives on the master serving its slot, so a
 * message crosses no cluster bus and the load spreads over the masters as
 * channels do; the subscriber follows the channel to the new master when a
 * failover or a resharding moves its slot.
 *
 * Delivery is at most once either way: what is published while a subscription
 * is down (between `onDown` and `onUp`) never reaches it.
 */
export async function publish(redis: Redis, channel: string, message: string | Buffer): Promise<void> {
  if (redis instanceof Cluster) await redis.spublish(channel, message);
  else await redis.publish(channel, message);
}

/** Publishes each item's message on its channel, in as few round trips as the deployment allows. */
export async function publishEach<T>(
  redis: Redis,
  items: readonly T[],
  channelOf: (item: T) => string,
  messageOf: (item: T) => string | Buffer,
): Promise<void> {
  const sharded = redis instanceof Cluster;
  const results = await pipelineEach(redis, items, channelOf, (pipeline, item) =>
    sharded
      ? pipeline.spublish(channelOf(item), messageOf(item))
      : pipeline.publish(channelOf(item), messageOf(item)),
  );
  const failed = results.find(([error]) => error !== null);
  if (failed?.[0]) throw failed[0];
}

export interface SubscribeOptions {
  /** The connection's name (CLIENT LIST) and the subscription's name in logs. */
  readonly name: string;
  readonly onMessage: (message: Buffer) => void;
  /** The subscription is lost: messages published from now on are missed until `onUp`. */
  readonly onDown?: () => void;
  /** The subscription holds again after a loss (not called for the first subscription). */
  readonly onUp?: () => void;
}

export interface Subscription {
  /** False between a loss and the resubscription. */
  readonly listening: boolean;
  close(): Promise<void>;
}

/**
 * Subscribes to one channel on a connection of its own; resolves once the first subscription holds
 * (and rejects if it cannot be made). After a loss it resubscribes by itself, and says so through
 * `onDown`/`onUp` so the caller can stop trusting whatever the channel keeps fresh meanwhile.
 */
export async function subscribe(
  redis: Redis,
  channel: string,
  options: SubscribeOptions,
): Promise<Subscription> {
  const subscription =
    redis instanceof Cluster
      ? new ShardedSubscription(redis, channel, options)
      : new ServerSubscription(redis, channel, options);
  await subscription.start();
  return subscription;
}

const message = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** How soon a refused subscription is tried again: at first, and at most (doubling in between). */
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 2_000;

/** Classic SUBSCRIBE on one server: ioredis reconnects, this resubscribes (then says onUp). */
class ServerSubscription implements Subscription {
  listening = false;
  private readonly logger: Logger;
  private readonly connection: Server;
  private closed = false;
  private retryMs = RETRY_MIN_MS;
  private timer?: NodeJS.Timeout;

  constructor(
    redis: Server,
    private readonly channel: string,
    private readonly options: SubscribeOptions,
  ) {
    this.logger = new Logger(options.name);
    // Resubscribing is done here, not by ioredis, so `onUp` comes only once the subscription holds.
    this.connection = redis.duplicate({
      lazyConnect: true,
      autoResubscribe: false,
      enableAutoPipelining: false,
      connectionName: options.name,
    });
  }

  async start(): Promise<void> {
    const { connection } = this;
    connection.on('messageBuffer', (_channel: Buffer, payload: Buffer) => this.options.onMessage(payload));
    connection.on('close', () => {
      // The next 'ready' resubscribes; a retry of the lost connection's refusal has nothing to do.
      clearTimeout(this.timer);
      this.down();
    });
    connection.on('error', (error: Error) => this.logger.warn(`${this.channel}: ${error.message}`));
    await connection.connect();
    await connection.subscribe(this.channel);
    this.listening = true;
    connection.on('ready', () => void this.resubscribe());
  }

  private down(): void {
    if (!this.listening) return;
    this.listening = false;
    this.options.onDown?.();
  }

  private async resubscribe(): Promise<void> {
    if (this.listening || this.closed) return;
    try {
      await this.connection.subscribe(this.channel);
      this.listening = true;
      this.retryMs = RETRY_MIN_MS;
      this.options.onUp?.();
    } catch (error) {
      this.logger.warn(`could not resubscribe to ${this.channel}: ${message(error)}`);
      // If the connection dropped again, its next 'ready' tries again. If Redis refused on a
      // connection that stays up (an ACL that no longer grants the channel, say), no 'ready' is
      // coming: try again with backoff, or the subscription would stay down for good.
      if (this.connection.status !== 'ready' || this.closed) return;
      this.timer = setTimeout(() => void this.resubscribe(), this.retryMs).unref();
      this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.connection.removeAllListeners('ready');
    this.listening = false;
    await this.connection.quit().catch(() => {
      this.connection.disconnect();
    });
  }
}

/** One 'refresh' listener per cluster client, however many channels it carries. */
const refreshWatchers = new WeakMap<Cluster, Set<() => void>>();

function onRefresh(cluster: Cluster, watcher: () => void): () => void {
  let watchers = refreshWatchers.get(cluster);
  if (watchers === undefined) {
    const created = new Set<() => void>();
    watchers = created;
    refreshWatchers.set(cluster, created);
    cluster.on('refresh', () => {
      for (const each of [...created]) each();
    });
  }
  watchers.add(watcher);
  const registered = watchers;
  return () => registered.delete(watcher);
}

/**
 * SSUBSCRIBE on a cluster: a plain connection to the master serving the channel's slot, with the
 * cluster's connection options (TLS included). When that connection is lost (its master died, or
 * was demoted and let go of the channel), it asks the cluster where the slot lives now and
 * subscribes there, retrying with backoff until a master takes the slot.
 */
class ShardedSubscription implements Subscription {
  listening = false;
  private readonly logger: Logger;
  private readonly slot: number;
  private connection?: Server;
  private closed = false;
  private retryMs = RETRY_MIN_MS;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly cluster: Cluster,
    private readonly channel: string,
    private readonly options: SubscribeOptions,
  ) {
    this.logger = new Logger(options.name);
    this.slot = keySlot(channel);
  }

  async start(): Promise<void> {
    await this.connect();
  }

  private async owner(): Promise<{ host: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      this.cluster.refreshSlotsCache((error) => {
        if (error) reject(error);
        else resolve();
      });
    });
    const node = this.cluster.slots[this.slot]?.[0];
    if (node === undefined) throw new Error(`no master serves slot ${this.slot} yet`);
    const at = node.lastIndexOf(':');
    return { host: node.slice(0, at), port: Number(node.slice(at + 1)) };
  }

  private async connect(): Promise<void> {
    const { host, port } = await this.owner();
    const connection = new Server({
      ...this.cluster.options.redisOptions,
      host,
      port,
      connectionName: this.options.name,
      lazyConnect: true,
      autoResubscribe: false,
      // A lost connection is followed to wherever the slot is now, not retried where it was.
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
    });
    connection.on('smessageBuffer', (_channel: Buffer, payload: Buffer) => this.options.onMessage(payload));
    connection.on('error', (error: Error) => {
      this.logger.warn(`${this.channel} on ${host}:${port}: ${error.message}`);
      // A master that hands the channel's slot to another (a resharding) pushes an SUNSUBSCRIBE
      // nobody asked for; ioredis reports it only as an error naming that reply. Follow the slot.
      if (/\bsunsubscribe\b/.test(error.message)) connection.disconnect();
    });
    try {
      await connection.connect();
      await connection.ssubscribe(this.channel);
    } catch (error) {
      connection.disconnect();
      throw error;
    }
    if (this.closed) {
      connection.disconnect();
      return;
    }
    this.connection = connection;
    this.listening = true;
    this.retryMs = RETRY_MIN_MS;
    connection.once('close', () => this.lost(connection));
    // A master demoted lets go of the channel without closing the connection: whenever the cluster
    // client learns the slots anew (on MOVED, and every slotsRefreshInterval), check the slot is still here.
    const here = `${host}:${port}`;
    const check = (): void => {
      const owner = this.cluster.slots[this.slot]?.[0];
      if (owner !== undefined && owner !== here) connection.disconnect();
    };
    const unwatch = onRefresh(this.cluster, check);
    connection.once('close', unwatch);
  }

  private lost(connection: Server): void {
    if (this.connection !== connection) return;
    this.connection = undefined;
    if (this.listening) {
      this.listening = false;
      this.options.onDown?.();
    }
    if (!this.closed) this.retry();
  }

  private retry(): void {
    this.timer = setTimeout(() => {
      this.connect().then(
        () => {
          if (!this.closed) this.options.onUp?.();
        },
        (error: unknown) => {
          this.logger.warn(`could not resubscribe to ${this.channel}: ${message(error)}`);
          this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
          if (!this.closed) this.retry();
        },
      );
    }, this.retryMs);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listening = false;
    clearTimeout(this.timer);
    const { connection } = this;
    this.connection = undefined;
    await connection?.quit().catch(() => {
      connection.disconnect();
    });
  }
}
