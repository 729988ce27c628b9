import { createHash } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { status, type Metadata } from '@grpc/grpc-js';
import { grpcError } from '@sotto/platform/grpc';
import { Upstream } from '../upstream/upstream';

/** The device a call comes from, as its credential proved. */
export interface AuthenticatedDevice {
  readonly accountId: string;
  readonly deviceId: number;
}

const CREDENTIAL = /^([0-9a-f-]{36})\.(\d{1,10}):([A-Za-z0-9_-]{16,128})$/;
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
    if (typeof header !== 'string' || header.length === 0) {
      throw grpcError(status.UNAUTHENTICATED, 'authorization: credentials are required');
    }
    const key = createHash('sha256').update(header).digest('base64');
    const cached = this.cache.get(key);
    if (cached && cached.expires > Date.now()) return cached.device;

    const match = CREDENTIAL.exec(header);
    if (!match)
      throw grpcError(status.UNAUTHENTICATED, 'authorization: expected <account-id>.<device-id>:<secret>');
    const device = { accountId: match[1], deviceId: Number(match[2]) };
    const { authenticated } = await this.upstream.directory.authenticate({
      ...device,
      deviceSecret: match[3],
    });
    if (!authenticated)
      throw grpcError(status.UNAUTHENTICATED, 'authorization: unknown device or wrong secret');

    if (this.cache.size >= CACHE_MAX) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, { device, expires: Date.now() + CACHE_TTL_MS });
    return device;
  }
}
