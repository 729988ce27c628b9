import { PublicKey, SenderCertificate } from '@signalapp/libsignal-client';
import { SottoError } from '../errors';
import type { AccountFile } from '../profile';
import { bytes } from './bytes';
import type { GatewayConnection } from './connection';

/** How long before its expiration a certificate is replaced, at most: a day's certificate is kept 23 hours. */
const REFRESH_BEFORE_MS = 60 * 60 * 1000;

/** The trust root as given (base64 of a libsignal PublicKey), or a SottoError saying what is wrong with it. */
export function parseTrustRoot(base64: string): PublicKey {
  try {
    return PublicKey.deserialize(bytes(Buffer.from(base64, 'base64')));
  } catch {
    throw new SottoError(
      'the sealed-sender trust root is not a public key (expected the base64 that `npm run sealed-sender:keys` prints)',
    );
  }
}

/**
 * This device's sealed-sender certificate: fetched from the gateway, checked
 * against the pinned trust root and against this device's own identity
 * (a certificate naming anyone else, or another identity key, is the
 * server's mistake or its attack, and is never used), then kept until
 * shortly before it expires.
 */
export class SenderCertificates {
  private cached?: { certificate: SenderCertificate; refreshAt: number };

  constructor(
    private readonly connection: GatewayConnection,
    private readonly device: Pick<AccountFile, 'accountId' | 'deviceId'> & { identityKey: PublicKey },
    private readonly trustRoot: string | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  async current(): Promise<SenderCertificate> {
    if (this.cached !== undefined && this.now() < this.cached.refreshAt) return this.cached.certificate;
    const root = this.pinnedRoot();
    const fetchedAt = this.now();
    const { certificate: serialized } = await this.connection.call(
      this.connection.accounts.getSenderCertificate.bind(this.connection.accounts),
      {},
    );
    const certificate = this.checked(serialized, root);
    const lifetime = certificate.expiration() - fetchedAt;
    this.cached = {
      certificate,
      refreshAt: certificate.expiration() - Math.min(REFRESH_BEFORE_MS, lifetime / 2),
    };
    return certificate;
  }

  /** The pinned trust root; a SottoError when none is pinned or it is not a key. */
  pinnedRoot(): PublicKey {
    if (this.trustRoot === undefined) {
      throw new SottoError(
        `no sealed-sender trust root is pinned for ${this.connection.server}: give it with the trust-root option or SOTTO_SENDER_CERTIFICATE_TRUST_ROOT`,
      );
    }
    return parseTrustRoot(this.trustRoot);
  }

  private checked(serialized: Uint8Array, root: PublicKey): SenderCertificate {
    let certificate: SenderCertificate;
    try {
      certificate = SenderCertificate.deserialize(bytes(serialized));
    } catch {
      throw new SottoError(`server ${this.connection.server} sent a sender certificate that is not one`);
    }
    if (!certificate.validate(root, this.now())) {
      throw new SottoError(
        `server ${this.connection.server} sent a sender certificate that does not validate against the pinned trust root (signed by another root, or expired)`,
      );
    }
    const namesThisDevice =
      certificate.senderUuid() === this.device.accountId &&
      certificate.senderDeviceId() === this.device.deviceId &&
      certificate.key().equals(this.device.identityKey);
    if (!namesThisDevice) {
      throw new SottoError(
        `server ${this.connection.server} sent a sender certificate for another device or identity key`,
      );
    }
    return certificate;
  }
}
