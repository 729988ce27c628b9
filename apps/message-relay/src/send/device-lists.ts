import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import { Counter, Registry } from 'prom-client';
import { deviceListChanges } from '@sotto/contracts';
import type { AccountDevices, Device } from '@sotto/contracts/generated/sotto/directory/v1/directory';
import { BatchedReads, grpcError, grpcStatusOf } from '@sotto/platform/grpc';
import { InvalidatedCache, REDIS, type Redis } from '@sotto/platform/redis';
import { RELAY_ENV, type RelayEnv } from '../env';
import { Upstream } from '../upstream/upstream';

/** The most accounts the relay asks the directory about in one ListDevicesBatch call. */
export const DIRECTORY_BATCH_ACCOUNTS = 500;

/** Where a device list came from: the cache, or the directory. */
export type DeviceListSource = 'cache' | 'directory';

/**
 * The device lists Send checks against, cached in the relay so that a send
 * costs no call to the directory: Signal's servers likewise check sends
 * against cached accounts.
 *
 * The directory publishes every committed change of an account's devices
 * (deviceListChanges), and the relay drops that account's entry as the message
 * arrives (InvalidatedCache: a read under way meanwhile is not kept, and while
 * the subscription is down every send asks the directory). Entries also
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
  private readonly lookups: Counter<'source'>;
  private readonly directoryCalls: Counter;
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
  private readonly cache: InvalidatedCache<readonly Device[]>;

  constructor(
    private readonly upstream: Upstream,
    @Inject(REDIS) redis: Redis,
    @Inject(RELAY_ENV) env: RelayEnv,
    registry: Registry,
  ) {
    this.cache = new InvalidatedCache<readonly Device[]>(redis, {
      what: 'device-list',
      channel: deviceListChanges.CHANNEL,
      subscriber: 'sotto-relay-device-lists',
      ttlMs: env.DEVICE_LIST_CACHE_TTL_MS,
      maxEntries: env.DEVICE_LIST_CACHE_MAX_ACCOUNTS,
      keyOf: (notice) => deviceListChanges.decode(notice).accountId,
      read: async (accountIds) =>
        (await this.batchedReads.read(accountIds)).map((account) => account?.devices),
    });
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
    await this.cache.start();
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
    const { value, source } = await this.cache.get(accountId, fresh);
    const from = source === 'cache' ? 'cache' : 'directory';
    this.lookups.inc({ source: from });
    if (value === undefined) throw grpcError(status.NOT_FOUND, 'account_id: no such account');
    return { devices: value, source: from };
  }

  /** How many accounts the cache holds now. */
  get size(): number {
    return this.cache.size;
  }

  /** Forgets the account's list, and keeps a directory read under way from caching what it gets. */
  invalidate(accountId: string): void {
    this.cache.invalidate(accountId);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.cache.close();
  }
}
