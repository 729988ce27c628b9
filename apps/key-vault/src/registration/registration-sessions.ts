import { randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { AccountId } from '@sotto/platform/ids';
import { REDIS, type Redis } from '@sotto/platform/redis';

/** A registration may be finished this long after it started. */
const REGISTRATION_TTL_MS = 10 * 60 * 1000;

export interface RegistrationSession {
  readonly accountId: AccountId;
  /** The fresh OPAQUE credential identifier the registration response was made under. */
  readonly credentialIdentifier: Buffer;
}

/** Registrations between StartRegistration and FinishRegistration, in Redis so any replica can finish one. */
@Injectable()
export class RegistrationSessions {
  constructor(@Inject(REDIS) private readonly redis: Redis) {}

  private key(registrationId: string): string {
    return `sotto:vault:registration:{${registrationId}}`;
  }

  async create(session: RegistrationSession): Promise<string> {
    const registrationId = randomBytes(16).toString('base64url');
    const value = JSON.stringify({
      accountId: session.accountId,
      credentialIdentifier: session.credentialIdentifier.toString('base64url'),
    });
    await this.redis.set(this.key(registrationId), value, 'PX', REGISTRATION_TTL_MS);
    return registrationId;
  }

  async find(registrationId: string): Promise<RegistrationSession | undefined> {
    const value = await this.redis.get(this.key(registrationId));
    if (value === null) return undefined;
    const parsed = JSON.parse(value) as { accountId: AccountId; credentialIdentifier: string };
    return {
      accountId: parsed.accountId,
      credentialIdentifier: Buffer.from(parsed.credentialIdentifier, 'base64url'),
    };
  }

  async remove(registrationId: string): Promise<void> {
    await this.redis.del(this.key(registrationId));
  }
}
