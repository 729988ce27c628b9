import { createHash } from 'node:crypto';
import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { linkApprovals } from '@sotto/contracts';
import { publish, REDIS, subscribe, type Redis, type Subscription } from '@sotto/platform/redis';
import { GATEWAY_ENV, type GatewayEnv } from '../env';

/** How often a waiting WaitForLink reads the directory when no notice comes (a lost pub/sub message, say). */
export const LINK_POLL_MS = 5_000;

const message = (error: unknown): string => (error instanceof Error ? error.message : String(error));

const hashOf = (token: Uint8Array): string => createHash('sha256').update(token).digest('hex');

/**
 * Wakes WaitForLink calls when their token is approved, on whichever gateway
 * the approval came: the approving gateway publishes the token's hash on
 * Redis, every gateway wakes its waiters for it. A waiter also wakes every
 * LINK_POLL_MS, so a notice lost on the way costs seconds, not the link.
 */
@Injectable()
export class LinkWaits implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(LinkWaits.name);
  private readonly waiters = new Map<string, Set<() => void>>();
  private subscription?: Subscription;
  private stopping = false;

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(GATEWAY_ENV) private readonly env: GatewayEnv,
  ) {}

  async onModuleInit(): Promise<void> {
    this.subscription = await subscribe(this.redis, linkApprovals.CHANNEL, {
      name: `sotto-link-approvals-${this.env.GATEWAY_ID}`,
      onMessage: (payload) => {
        if (payload.length === linkApprovals.TOKEN_HASH_BYTES) this.wake(payload.toString('hex'));
      },
    });
  }

  /** Whether the gateway is stopping: waiters then give up at once. */
  get closing(): boolean {
    return this.stopping;
  }

  /** Tells every gateway's waiters for the token, once the directory committed its approval. */
  async approved(token: Uint8Array): Promise<void> {
    const hash = hashOf(token);
    this.wake(hash);
    try {
      await publish(this.redis, linkApprovals.CHANNEL, Buffer.from(hash, 'hex'));
    } catch (error) {
      this.logger.warn(`could not announce a link approval; waiters will poll: ${message(error)}`);
    }
  }

  /**
   * Resolves when the token may have been approved (a notice came), after
   * LINK_POLL_MS, at `until` (epoch ms), when `cancelled` fires, or when the
   * gateway stops, whichever is first.
   */
  next(token: Uint8Array, until: number, cancelled: AbortSignal): Promise<void> {
    const hash = hashOf(token);
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        cancelled.removeEventListener('abort', done);
        const set = this.waiters.get(hash);
        set?.delete(done);
        if (set?.size === 0) this.waiters.delete(hash);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, Math.min(LINK_POLL_MS, until - Date.now())));
      cancelled.addEventListener('abort', done);
      const set = this.waiters.get(hash) ?? new Set();
      set.add(done);
      this.waiters.set(hash, set);
      if (this.stopping || cancelled.aborted) done();
    });
  }

  private wake(hash: string): void {
    for (const waiter of [...(this.waiters.get(hash) ?? [])]) waiter();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopping = true;
    for (const hash of [...this.waiters.keys()]) this.wake(hash);
    await this.subscription?.close();
  }
}
