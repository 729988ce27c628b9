import { Inject, Injectable } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import { PublicKey, SenderCertificate } from '@signalapp/libsignal-client';
import { grpcError } from '@sotto/platform/grpc';
import type { AuthenticatedDevice } from '../auth/authenticator';
import { GATEWAY_ENV, type GatewayEnv } from '../env';
import { Upstream } from '../upstream/upstream';

/** The stored identity key, or INTERNAL: the directory verified it at registration, so this is not the caller's doing. */
function identityKeyOf(bytes: Uint8Array): PublicKey {
  try {
    return PublicKey.deserialize(new Uint8Array(bytes));
  } catch {
    throw grpcError(status.INTERNAL, "the account's identity key could not be read");
  }
}

/**
 * Issues sealed-sender certificates: libsignal SenderCertificates naming one
 * authenticated device (its account id as the sender UUID, no phone number),
 * the account's identity key as the directory holds it (never one the caller
 * offers), and an expiration SENDER_CERTIFICATE_TTL_MS away, in Unix
 * milliseconds as libsignal's validate compares it. Signed with the server
 * key the server certificate certifies, so a client that pinned the trust
 * root can check the chain. Nothing about an issuance is logged.
 */
@Injectable()
export class SenderCertificateIssuer {
  constructor(
    @Inject(GATEWAY_ENV) private readonly env: GatewayEnv,
    private readonly upstream: Upstream,
  ) {}

  async issue(device: AuthenticatedDevice, now: number = Date.now()): Promise<Uint8Array> {
    const { identityKey } = await this.upstream.directory.getIdentityKey({ accountId: device.accountId });
    return SenderCertificate.new(
      device.accountId,
      null,
      device.deviceId,
      identityKeyOf(identityKey),
      now + this.env.SENDER_CERTIFICATE_TTL_MS,
      this.env.SENDER_CERTIFICATE_SERVER_CERTIFICATE,
      this.env.SENDER_CERTIFICATE_SERVER_KEY,
    ).serialize();
  }
}
