import { createHash } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { status, type Metadata } from '@grpc/grpc-js';
import { grpcError } from '@sotto/platform/grpc';
import { parseDeviceCredential, type DeviceCredential } from '@sotto/platform/ids';
import { Upstream } from '../upstream/upstream';
import { CredentialCache, type AuthenticatedDevice } from './credential-cache';
import { AuthFailureLimits } from './failure-limits';
import { clientSource } from './client-source';

export type { AuthenticatedDevice } from './credential-cache';

/** The device credential in a call's `authorization` metadata; UNAUTHENTICATED if it has none or a malformed one. */
export function presentedCredential(metadata: Metadata | undefined): DeviceCredential {
  const parsed = parseDeviceCredential(metadata?.get('authorization')[0]);
  if (!parsed.ok) throw grpcError(status.UNAUTHENTICATED, parsed.error.message);
  return parsed.value;
}

/**
 * Checks the `authorization` metadata ("<account-id>.<device-id>:<secret>")
 * against the directory, which compares in constant time. Successes are
 * cached (see CredentialCache: revocations reach every gateway through
 * Redis); failures never are, and are rate limited per source address and
 * per device (AuthFailureLimits). A missing or malformed credential is
 * refused without counting: it costs nothing and guesses nothing.
 */
@Injectable()
export class Authenticator {
  constructor(
    private readonly upstream: Upstream,
    private readonly cache: CredentialCache,
    private readonly limits: AuthFailureLimits,
  ) {}

  /** `peer` is grpc-js's peer string of the call, for the per-source limit. */
  async authenticate(metadata: Metadata | undefined, peer: string): Promise<AuthenticatedDevice> {
    const { accountId, deviceId, secret } = presentedCredential(metadata);
    const key = createHash('sha256').update(`${accountId}.${deviceId}:${secret}`).digest('base64');
    const cached = this.cache.get(key);
    if (cached) return cached;

    const device: AuthenticatedDevice = { accountId, deviceId };
    const attempt = await this.limits.begin(clientSource(peer), device);
    const generation = this.cache.generation;
    let authenticated: boolean;
    try {
      ({ authenticated } = await this.upstream.directory.authenticate({ ...device, deviceSecret: secret }));
    } catch (error) {
      await attempt.abandoned();
      throw error;
    }
    if (!authenticated)
      throw grpcError(status.UNAUTHENTICATED, 'authorization: unknown device or wrong secret');
    await attempt.succeeded();
    this.cache.remember(key, device, generation);
    return device;
  }
}
