import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { credentialRevocations } from '@sotto/contracts';
import { publish, REDIS, subscribe, type Redis, type Subscription } from '@sotto/platform/redis';
import { GATEWAY_ENV, type GatewayEnv } from '../env';
import { CredentialCache } from './credential-cache';

export type Revocation = credentialRevocations.Event;

const message = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/**
 * Tells every gateway when devices' credentials stop being valid (signed out
 * by account recovery, or a rotated secret), over Redis pub/sub, so that none
 * keeps accepting them from its cache: each drops the devices' cached
 * authentications and ends their delivery streams as the message arrives.
 *
 * Pub/sub delivers at most once: what is published while a subscriber is
 * disconnected never reaches it. So while this gateway's subscription is down
 * its cache is suspended, and once it is back the cache starts empty.
 */
@Injectable()
export class CredentialRevocations implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(CredentialRevocations.name);
  private readonly listeners: ((revocation: Revocation) => void)[] = [];
  private subscription?: Subscription;

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly cache: CredentialCache,
    @Inject(GATEWAY_ENV) private readonly env: GatewayEnv,
  ) {}

  /** Runs `listener` for every revocation this gateway hears of, its own included. */
  onRevocation(listener: (revocation: Revocation) => void): void {
    this.listeners.push(listener);
  }

  async onModuleInit(): Promise<void> {
    // The cache resumes only once the subscription holds again, and starts empty.
    this.subscription = await subscribe(this.redis, credentialRevocations.CHANNEL, {
      name: `sotto-revocations-${this.env.GATEWAY_ID}`,
      onMessage: (payload) => this.received(payload),
      onDown: () => this.cache.suspend(),
      onUp: () => {
        this.cache.resume();
        this.logger.log('revocation channel back; the authentication cache starts empty');
      },
    });
    this.cache.resume();
  }

  /**
   * Call once the directory has committed: the devices' credentials are dropped
   * here at once, and on every other gateway as the message arrives. A
   * message that cannot be published is logged; gateways then stop accepting
   * the credentials when their cache entries expire (AUTH_CACHE_TTL_MS).
   */
  async revoke(accountId: string, deviceIds: readonly number[]): Promise<void> {
    if (deviceIds.length === 0) return;
    const revocation: Revocation = { accountId, deviceIds: [...deviceIds] };
    this.apply(revocation);
    try {
      await publish(this.redis, credentialRevocations.CHANNEL, credentialRevocations.encode(revocation));
    } catch (error) {
      this.logger.error(
        `could not tell other gateways that ${accountId} devices ${deviceIds.join(',')} were revoked: ${message(error)}`,
      );
    }
  }

  private received(payload: Buffer): void {
    let revocation: Revocation;
    try {
      revocation = credentialRevocations.decode(payload);
    } catch {
      this.logger.warn('ignoring an undecodable credential revocation');
      return;
    }
    this.apply(revocation);
  }

  private apply(revocation: Revocation): void {
    this.cache.revoke(revocation.accountId, revocation.deviceIds);
    for (const listener of this.listeners) listener(revocation);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.subscription?.close();
  }
}
