import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import { Counter, Registry } from 'prom-client';
import { deviceListChanges } from '@sotto/contracts';
import type { AccountDevices, Device } from '@sotto/contracts/generated/sotto/directory/v1/directory';
import { SameTurnBatch } from '@sotto/platform/batching';
import { BatchedReads, grpcError, grpcStatusOf } from '@sotto/platform/grpc';
import { REDIS, subscribe, type Redis, type Subscription } from '@sotto/platform/redis';
import { RELAY_ENV, type RelayEnv } from '../env';
import { Upstream } from '../upstream/upstream';

/** The most accounts the relay asks the directory about in one ListDevicesBatch call. */
export const DIRECTORY_BATCH_ACCOUNTS = 500;

/** Where a device list came from: the cache, or the directory. */
export type DeviceListSource = 'cache' | 'directory';

interface Entry {
  readonly devices: readonly Device[];
  readonly expiresAtMs: number;
}

/** A directory read under way; an invalidation during it keeps its answer out of the cache. */
interface Fetch {
  readonly devices: Promise<readonly Device[]>;
  invalidated: boolean;
}

/**
 * The device lists Send checks against, cached in the relay so that a send
 * costs no call to the directory: Signal's servers likewise check sends
 * against cached accounts.
 *
 * The directory publishes every committed change of an account's devices
 * (deviceListChanges), and the relay drops that account's entry as the message
 * arrives. Pub/sub delivers at most once, so while the subscription is down
 * the cache is bypassed, and once it is back it starts empty. Entries also
 * expire (DEVICE_LIST_CACHE_TTL_MS), which bounds what a lost publish costs,
 * and the cache keeps at most DEVICE_LIST_CACHE_MAX_ACCOUNTS accounts, the
 * least recently used going first. A send that disagrees with a cached list is
 * checked again against the directory before it is refused, so a stale entry
 * never refuses a correct send.
 *
 * The directory reads that start in one turn of the event loop go out as one
 * ListDevicesBatch call (chunks of DIRECTORY_BATCH_ACCOUNTS), so that a burst
 * of sends to many accounts the cache has not seen costs a few queries, not
 * one round trip each.
 */
@Injectable()
export class DeviceLists implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(DeviceLists.name);
  // In least-recently-used order: a hit moves its entry to the end.
  private readonly entries = new Map<string, Entry>();
  private readonly fetches = new Map<string, Fetch>();
  private readonly lookups: Counter<'source'>;
  private readonly directoryCalls: Counter;
  /** The accounts whose lists are read in one turn, read in one call; undefined for an unknown account. */
  private readonly reads = new SameTurnBatch((accountIds: string[]) => this.readMany(accountIds));
  /** ListDevicesBatch, or one ListDevices per account from a directory older than this relay. */
  private readonly batchedReads = new BatchedReads<AccountDevices>({
    what: 'device lists',
    chunk: DIRECTORY_BATCH_ACCOUNTS,
    batch: async (accountIds) => (await this.upstream.directory.listDevicesBatch({ accountIds })).accounts,
    one: async (accountId) => {
      try {
        const { devices } = await this.upstream.directory.listDevices({ accountId });
        return { accountId, found: true, devices };
      } catch (error) {
        if (grpcStatusOf(error) === status.NOT_FOUND) return undefined;
        throw error;
      }
    },
    found: (account) => account.found,
    onFallback: () =>
      this.logger.warn('the directory has no ListDevicesBatch: reading device lists one account at a time'),
    onCall: () => this.directoryCalls.inc(),
  });
  private readonly ttlMs: number;
  private readonly maxAccounts: number;
  /** False while the invalidations may be missed: every lookup goes to the directory. */
  private listening = false;
  private subscription?: Subscription;

  constructor(
    private readonly upstream: Upstream,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(RELAY_ENV) env: RelayEnv,
    registry: Registry,
  ) {
    this.ttlMs = env.DEVICE_LIST_CACHE_TTL_MS;
    this.maxAccounts = env.DEVICE_LIST_CACHE_MAX_ACCOUNTS;
    this.lookups = new Counter({
      name: 'sotto_relay_device_list_lookups_total',
      help: 'Device lists Send checked against, by where they came from (cache, or a directory call).',
      labelNames: ['source'],
      registers: [registry],
    });
    this.directoryCalls = new Counter({
      name: 'sotto_relay_device_list_directory_calls_total',
      help: 'Calls the relay made to the directory for device lists: one answers every account read in one turn.',
      registers: [registry],
    });
  }

  async onModuleInit(): Promise<void> {
    if (this.ttlMs === 0) return;
    // The cache is used again only once the subscription holds, and starts empty.
    this.subscription = await subscribe(this.redis, deviceListChanges.CHANNEL, {
      name: 'sotto-relay-device-lists',
      onMessage: (payload) => this.received(payload),
      onDown: () => this.suspend(),
      onUp: () => {
        this.listening = true;
        this.logger.log('device-list channel back; the device-list cache starts empty');
      },
    });
    this.listening = true;
  }

  /**
   * The account's devices: from the cache when it holds them, else from the
   * directory (one call for all the sends that ask at once). `fresh` always
   * asks the directory.
   */
  async get(
    accountId: string,
    fresh = false,
  ): Promise<{ devices: readonly Device[]; source: DeviceListSource }> {
    if (!fresh && this.listening) {
      const entry = this.entries.get(accountId);
      if (entry && entry.expiresAtMs > Date.now()) {
        this.entries.delete(accountId);
        this.entries.set(accountId, entry);
        this.lookups.inc({ source: 'cache' });
        return { devices: entry.devices, source: 'cache' };
      }
    }
    this.lookups.inc({ source: 'directory' });
    return { devices: await this.fetch(accountId, fresh), source: 'directory' };
  }

  /** How many accounts the cache holds now. */
  get size(): number {
    return this.entries.size;
  }

  private fetch(accountId: string, fresh: boolean): Promise<readonly Device[]> {
    const pending = this.fetches.get(accountId);
    // A fresh read may not join one that started before what made it ask.
    if (pending && !fresh && !pending.invalidated) return pending.devices;
    const fetch: Fetch = {
      invalidated: !this.listening,
      devices: this.reads.add([accountId]).then(([devices]) => {
        if (devices === undefined) throw grpcError(status.NOT_FOUND, 'account_id: no such account');
        return devices;
      }),
    };
    this.fetches.set(accountId, fetch);
    const settle = (): void => {
      if (this.fetches.get(accountId) === fetch) this.fetches.delete(accountId);
    };
    fetch.devices.then((devices) => {
      settle();
      if (!fetch.invalidated && this.listening && this.ttlMs > 0) this.store(accountId, devices);
    }, settle);
    return fetch.devices;
  }

  /** The lists of these accounts from the directory, in their order: undefined where none exists. */
  private async readMany(accountIds: readonly string[]): Promise<(readonly Device[] | undefined)[]> {
    return (await this.batchedReads.read(accountIds)).map((account) => account?.devices);
  }

  private store(accountId: string, devices: readonly Device[]): void {
    this.entries.delete(accountId);
    this.entries.set(accountId, { devices, expiresAtMs: Date.now() + this.ttlMs });
    while (this.entries.size > this.maxAccounts) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.entries.delete(oldest.value);
    }
  }

  /** Forgets the account's list, and keeps a directory read under way from caching what it gets. */
  invalidate(accountId: string): void {
    this.entries.delete(accountId);
    const pending = this.fetches.get(accountId);
    if (pending) pending.invalidated = true;
  }

  private received(payload: Buffer): void {
    let change: deviceListChanges.Event;
    try {
      change = deviceListChanges.decode(payload);
    } catch {
      this.logger.warn('ignoring an undecodable device-list change');
      return;
    }
    this.invalidate(change.accountId);
  }

  private suspend(): void {
    if (!this.listening) return;
    this.listening = false;
    this.entries.clear();
    for (const pending of this.fetches.values()) pending.invalidated = true;
    this.logger.warn('device-list channel down: every send asks the directory until it is back');
  }

  async onApplicationShutdown(): Promise<void> {
    await this.subscription?.close();
  }
}
