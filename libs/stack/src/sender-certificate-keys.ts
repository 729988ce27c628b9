import { PrivateKey, ServerCertificate } from '@signalapp/libsignal-client';

/**
 * A sealed-sender trust root and a server certificate it signed, all in
 * base64. Clients pin `trustRoot`; the gateway holds `serverCertificate` and
 * `serverKey` (SENDER_CERTIFICATE_SERVER_CERTIFICATE and
 * SENDER_CERTIFICATE_SERVER_KEY) and signs sender certificates with the key;
 * `trustRootPrivateKey` is needed only to certify a new server key, so an
 * operator keeps it offline and no service is ever given it.
 */
export interface SenderCertificateKeys {
  /** The trust root's public key (a serialized libsignal PublicKey). */
  readonly trustRoot: string;
  readonly trustRootPrivateKey: string;
  /** Which server key this is, as the certificate carries it; a new key gets a new id. */
  readonly keyId: number;
  /** A serialized libsignal ServerCertificate for the public key of `serverKey`. */
  readonly serverCertificate: string;
  readonly serverKey: string;
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}

/**
 * A new trust root, and a server key certified by it under `keyId`; with
 * `trustRootPrivateKey` (base64), a new server key under an existing root
 * (the rotation of a gateway key, which clients do not notice).
 */
export function makeSenderCertificateKeys(
  options: { readonly keyId?: number; readonly trustRootPrivateKey?: string } = {},
): SenderCertificateKeys {
  const keyId = options.keyId ?? 1;
  if (!Number.isInteger(keyId) || keyId < 0 || keyId > 0xffff_ffff) {
    throw new Error(`key id ${keyId}: expected a whole number from 0 to 4294967295`);
  }
  const root =
    options.trustRootPrivateKey === undefined
      ? PrivateKey.generate()
      : PrivateKey.deserialize(new Uint8Array(Buffer.from(options.trustRootPrivateKey, 'base64')));
  const server = PrivateKey.generate();
  return {
    trustRoot: base64(root.getPublicKey().serialize()),
    trustRootPrivateKey: base64(root.serialize()),
    keyId,
    serverCertificate: base64(ServerCertificate.new(keyId, server.getPublicKey(), root).serialize()),
    serverKey: base64(server.serialize()),
  };
}

/** The gateway's variables for these keys: the certificate and its private key, never the root's. */
export function senderCertificateVariables(keys: SenderCertificateKeys): Record<string, string> {
  return {
    SENDER_CERTIFICATE_SERVER_CERTIFICATE: keys.serverCertificate,
    SENDER_CERTIFICATE_SERVER_KEY: keys.serverKey,
  };
}
