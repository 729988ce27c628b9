import { createHash } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { status, type Metadata } from '@grpc/grpc-js';
import { grpcError } from '@sotto/platform/grpc';
import { parseDeviceCredential, type AccountId, type DeviceId } from '@sotto/platform/ids';
import { Upstream } from '../upstream/upstream';

/** The device a call comes from, as its credential proved. */
export interface AuthenticatedDevice {
  readonly accountId: AccountId;
  readonly deviceId: DeviceId;
}

const CACHE_TTL_MS = 30_000;
const CACHE_MAX = 100_000;

/**
 * Checks the `authorization` metadata ("<account-id>.<device-id>:<secret>")
 * against the directory, which compares in constant time. Successes are
 * remembered briefly, keyed by a hash of the credential, so a busy device
 * does not cost the directory a call per request; failures never are.
 */
@Injectable()
export class Authenticator {
  private readonly cache = new Map<string, { device: AuthenticatedDevice; expires: number }>();

  constructor(private readonly upstream: Upstream) {}

  /** Drops what this gateway remembers of an account's devices, e.g. once they were signed out. */
  forgetAccount(accountId: string): void {
    for (const [key, entry] of this.cache) if (entry.device.accountId === accountId) this.cache.delete(key);
  }

  async authenticate(metadata: Metadata | undefined): Promise<AuthenticatedDevice> {
    const header = metadata?.get('authorization')[0];
    const parsed = parseDeviceCredential(header);
    if (!parsed.ok) throw grpcError(status.UNAUTHENTICATED, parsed.error.message);
    const { accountId, deviceId, secret } = parsed.value;
    const key = createHash('sha256').update(`${accountId}.${deviceId}:${secret}`).digest('base64');
    const cached = this.cache.get(key);
    if (cached && cached.expires > Date.now()) return cached.device;

    const device: AuthenticatedDevice = { accountId, deviceId };
    const { authenticated } = await this.upstream.directory.authenticate({ ...device, deviceSecret: secret });
    if (!authenticated)
      throw grpcError(status.UNAUTHENTICATED, 'authorization: unknown device or wrong secret');

    if (this.cache.size >= CACHE_MAX) {
      const oldest = this.cache.keys().next();
      if (!oldest.done) this.cache.delete(oldest.value);
    }
    this.cache.set(key, { device, expires: Date.now() + CACHE_TTL_MS });
    return device;
  }
}
