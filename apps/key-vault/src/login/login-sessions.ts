import { randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { AccountId } from '@sotto/platform/ids';
import { REDIS, type Redis } from '@sotto/platform/redis';
import { Sealer } from '../sealing/sealer';

/** A login between StartLogin and FinishLogin. */
export interface LoginSession {
  readonly accountId: AccountId;
  readonly credentialIdentifier: Buffer;
  readonly epoch: string;
  readonly deadline: Date;
  /** OPAQUE server state: it holds the MAC a correct client will send. */
  readonly serverState: Buffer;
}

interface Stored {
  accountId: AccountId;
  credentialIdentifier: string;
  epoch: string;
  deadline: string;
  serverState: string;
}

/**
 * Logins in flight, in Redis with a TTL so that any replica can finish one.
 * Sealed by the HSM key: whoever reads Redis must not learn the expected MAC,
 * or they could fake a success and reset the guess count.
 */
@Injectable()
export class LoginSessions {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly sealer: Sealer,
  ) {}

  private key(loginId: string): string {
    return `sotto:vault:login:{${loginId}}`;
  }

  private context(loginId: string): string {
    return `sotto.vault.v1/login/${loginId}`;
  }

  async create(session: LoginSession, ttlMs: number): Promise<string> {
    const loginId = randomBytes(16).toString('base64url');
    const stored: Stored = {
      accountId: session.accountId,
      credentialIdentifier: session.credentialIdentifier.toString('base64url'),
      epoch: session.epoch,
      deadline: session.deadline.toISOString(),
      serverState: session.serverState.toString('base64url'),
    };
    const sealed = this.sealer.seal(Buffer.from(JSON.stringify(stored)), this.context(loginId));
    await this.redis.set(this.key(loginId), sealed, 'PX', ttlMs);
    return loginId;
  }

  /** The login, removed so that it cannot be finished twice; undefined if unknown, finished or expired. */
  async take(loginId: string): Promise<LoginSession | undefined> {
    // GETDEL: of two replicas finishing the same login, one gets it.
    const sealed = await this.redis.getdelBuffer(this.key(loginId));
    if (sealed === null) return undefined;
    const stored = JSON.parse(this.sealer.unseal(sealed, this.context(loginId)).toString('utf8')) as Stored;
    return {
      accountId: stored.accountId,
      credentialIdentifier: Buffer.from(stored.credentialIdentifier, 'base64url'),
      epoch: stored.epoch,
      deadline: new Date(stored.deadline),
      serverState: Buffer.from(stored.serverState, 'base64url'),
    };
  }
}
