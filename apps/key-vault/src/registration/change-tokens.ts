import { createHash, randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { AccountId } from '@sotto/platform/ids';
import { REDIS, type Redis } from '@sotto/platform/redis';

/** A change token proves a login with the old password for this long. */
const CHANGE_TOKEN_TTL_MS = 10 * 60 * 1000;

/** What a change token lets its holder replace: one account's vault, as registered when it was issued. */
export interface ChangeGrant {
  readonly accountId: AccountId;
  readonly credentialIdentifier: Buffer;
}

/**
 * Tokens that a successful login hands out, proving the old password to a
 * password change. Redis keeps only their hash. A token is spent by the
 * replacement it authorizes: it names the registration it was issued for, and
 * a replacement gives the vault a new one.
 */
@Injectable()
export class ChangeTokens {
  constructor(@Inject(REDIS) private readonly redis: Redis) {}

  private key(token: string): string {
    return `sotto:vault:change:{${createHash('sha256').update(token).digest('base64url')}}`;
  }

  async issue(grant: ChangeGrant): Promise<string> {
    const token = randomBytes(16).toString('base64url');
    const value = JSON.stringify({
      accountId: grant.accountId,
      credentialIdentifier: grant.credentialIdentifier.toString('base64url'),
    });
    await this.redis.set(this.key(token), value, 'PX', CHANGE_TOKEN_TTL_MS);
    return token;
  }

  async find(token: string): Promise<ChangeGrant | undefined> {
    const value = await this.redis.get(this.key(token));
    if (value === null) return undefined;
    const parsed = JSON.parse(value) as { accountId: AccountId; credentialIdentifier: string };
    return {
      accountId: parsed.accountId,
      credentialIdentifier: Buffer.from(parsed.credentialIdentifier, 'base64url'),
    };
  }

  async remove(token: string): Promise<void> {
    await this.redis.del(this.key(token));
  }
}
