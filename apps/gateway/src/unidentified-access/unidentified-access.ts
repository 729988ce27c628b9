import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import { Counter, Registry } from 'prom-client';
import { unidentifiedAccessChanges } from '@sotto/contracts';
import type { AccountUnidentifiedAccess } from '@sotto/contracts/generated/sotto/directory/v1/directory';
import { BatchedReads, grpcStatusOf } from '@sotto/platform/grpc';
import type { AccountId } from '@sotto/platform/ids';
import { InvalidatedCache, REDIS, type Redis } from '@sotto/platform/redis';
import { GATEWAY_ENV, type GatewayEnv } from '../env';
import { Upstream } from '../upstream/upstream';

/** The most accounts whose access one directory call reads (the directory's own limit). */
const DIRECTORY_BATCH_ACCOUNTS = 1000;

/** Who may send an account sealed messages, as the directory keeps it. */
export interface Access {
  /** Empty when the account has set none. */
  readonly unidentifiedAccessKey: Uint8Array;
  readonly unrestrictedUnidentifiedAccess: boolean;
}

/**
 * The unidentified access SendSealed and SendMultiRecipient check keys
 * against, cached in the gateway so that a sealed send costs no call to the
 * directory, as the relay caches device lists (InvalidatedCache: the
 * directory publishes every committed change of an account's access, the
 * gateway drops that account's entry as the notice arrives, a read under way
 * meanwhile is not kept, and while the channel is down every send asks the
 * directory). Entries also expire (UNIDENTIFIED_ACCESS_CACHE_TTL_MS), which
 * bounds how long a lost notice lets an old key in.
 *
 * Keyed by the destination alone: nothing of a sender is kept, and a wrong key
 * is checked against the same cached answer as the right one. An account that
 * does not exist is not cached (each send to it asks the directory): ids are
 * random, so caching them would let anyone fill the cache with strangers'
 * guesses and push real accounts out.
 *
 * Reads that miss in one turn of the event loop go out as one
 * GetUnidentifiedAccessBatch call (one GetUnidentifiedAccess per account from
 * a directory older than this gateway).
 */
@Injectable()
export class UnidentifiedAccess implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(UnidentifiedAccess.name);
  private readonly lookups: Counter<'source'>;
  private readonly batchedReads = new BatchedReads<AccountUnidentifiedAccess>({
    what: 'access keys',
    chunk: DIRECTORY_BATCH_ACCOUNTS,
    batch: async (accountIds) =>
      (await this.upstream.directory.getUnidentifiedAccessBatch({ accountIds })).accounts,
    one: async (accountId) => {
      try {
        return {
          accountId,
          found: true,
          ...(await this.upstream.directory.getUnidentifiedAccess({ accountId })),
        };
      } catch (error) {
        if (grpcStatusOf(error) === status.NOT_FOUND) return undefined;
        throw error;
      }
    },
    found: (account) => account.found,
    onFallback: () =>
      this.logger.warn(
        'the directory has no GetUnidentifiedAccessBatch: reading access keys one account at a time',
      ),
  });
  private readonly cache: InvalidatedCache<Access>;

  constructor(
    private readonly upstream: Upstream,
    @Inject(REDIS) redis: Redis,
    @Inject(GATEWAY_ENV) env: GatewayEnv,
    registry: Registry,
  ) {
    this.cache = new InvalidatedCache<Access>(redis, {
      what: 'unidentified-access',
      channel: unidentifiedAccessChanges.CHANNEL,
      subscriber: `sotto-unidentified-access-${env.GATEWAY_ID}`,
      ttlMs: env.UNIDENTIFIED_ACCESS_CACHE_TTL_MS,
      maxEntries: env.UNIDENTIFIED_ACCESS_CACHE_MAX_ACCOUNTS,
      keyOf: (notice) => unidentifiedAccessChanges.decode(notice).accountId,
      read: async (accountIds) =>
        (await this.batchedReads.read(accountIds)).map(
          (account) =>
            account && {
              // A copy: the decoded key is a view of the whole answer, which it would keep alive.
              unidentifiedAccessKey: new Uint8Array(account.unidentifiedAccessKey),
              unrestrictedUnidentifiedAccess: account.unrestrictedUnidentifiedAccess,
            },
        ),
    });
    this.lookups = new Counter({
      name: 'sotto_gateway_unidentified_access_lookups_total',
      help: 'Accounts whose unidentified access a sealed send was checked against, by where it came from (cache, or the directory).',
      labelNames: ['source'],
      registers: [registry],
    });
  }

  async onModuleInit(): Promise<void> {
    await this.cache.start();
  }

  /** Each account's access, in their order (undefined for one that does not exist); the uncached read together. */
  async of(accountIds: readonly string[]): Promise<(Access | undefined)[]> {
    const answers = await this.cache.getMany(accountIds);
    for (const { source } of answers)
      this.lookups.inc({ source: source === 'cache' ? 'cache' : 'directory' });
    return answers.map(({ value }) => value);
  }

  /**
   * Sets the account's access in the directory, and drops it from this
   * gateway's cache once the directory has it: the notice tells every other
   * gateway, and this one does not wait for it.
   */
  async set(accountId: AccountId, access: Access): Promise<void> {
    try {
      await this.upstream.directory.setUnidentifiedAccess({ accountId, ...access });
    } finally {
      // Even when the answer was lost: the directory may have stored it.
      this.cache.invalidate(accountId);
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await this.cache.close();
  }
}
