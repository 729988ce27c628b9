import { PrivateKey, ServerCertificate } from '@signalapp/libsignal-client';
import { z } from 'zod';
import { positiveInt } from '@sotto/platform/config';

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Standard base64 (the form `npm run sealed-sender:keys` prints), decoded. */
function base64Bytes() {
  return z
    .string()
    .transform((value) => value.trim())
    .refine((value) => value.length % 4 === 0 && BASE64.test(value), {
      message: 'expected base64',
      abort: true,
    })
    .transform((value) => new Uint8Array(Buffer.from(value, 'base64')));
}

/** A serialized libsignal object, or an issue saying it is not one. */
function deserialized<T>(what: string, deserialize: (bytes: Uint8Array<ArrayBuffer>) => T) {
  return base64Bytes().transform((bytes, context): T => {
    try {
      return deserialize(bytes);
    } catch {
      context.addIssue({ code: 'custom', message: `is base64 but not ${what}` });
      return z.NEVER;
    }
  });
}

/**
 * The gateway's sealed-sender signing material: the server certificate a
 * trust root signed, and the private key of the public key it certifies.
 * Both are secrets of the gateway alone; the trust root's private key is
 * never needed by any service. A key that is not the certificate's stops the
 * gateway at start, as every certificate it issued would be refused by
 * clients. Compose it into the gateway's schema with `.and(...)`.
 */
export const senderCertificateEnv = z
  .object({
    /** A serialized libsignal ServerCertificate, base64. */
    SENDER_CERTIFICATE_SERVER_CERTIFICATE: deserialized('a libsignal ServerCertificate', (bytes) =>
      ServerCertificate.deserialize(bytes),
    ),
    /** The private key of the certificate's public key: 32 bytes, base64. */
    SENDER_CERTIFICATE_SERVER_KEY: deserialized('a libsignal private key (32 bytes)', (bytes) =>
      PrivateKey.deserialize(bytes),
    ),
    /** How long a certificate the gateway issues stays valid (24 h by default, as Signal's). */
    SENDER_CERTIFICATE_TTL_MS: positiveInt().default(24 * 60 * 60 * 1000),
  })
  .superRefine((env, context) => {
    const { SENDER_CERTIFICATE_SERVER_CERTIFICATE: certificate, SENDER_CERTIFICATE_SERVER_KEY: key } = env;
    // Either may have failed already (zod goes on to here), and was reported as such.
    if (!(certificate instanceof ServerCertificate) || !(key instanceof PrivateKey)) return;
    if (!key.getPublicKey().equals(certificate.key())) {
      context.addIssue({
        code: 'custom',
        path: ['SENDER_CERTIFICATE_SERVER_KEY'],
        message:
          'is not the private key of the key SENDER_CERTIFICATE_SERVER_CERTIFICATE certifies: clients would refuse every certificate signed with it',
      });
    }
  });
export type SenderCertificateEnv = z.output<typeof senderCertificateEnv>;
