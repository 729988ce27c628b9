import { readFileSync } from 'node:fs';
import { checkServerIdentity, createSecureContext, type PeerCertificate } from 'node:tls';
import { credentials, type ChannelCredentials } from '@grpc/grpc-js';
import { identityFromSubjectAltName, type PeerIdentity } from './topology';

/** A certificate of the platform: PEM files of the CA it trusts, its certificate and its private key. */
export interface TlsFiles {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/** Every TLS connection of the platform is TLS 1.3: the servers accept nothing older. */
export const TLS_MIN_VERSION = 'TLSv1.3';

function read(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new Error(
      `cannot read the ${what} ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
}

/**
 * Checks that the server's certificate names `expected` (its URI SAN
 * `spiffe://sotto/<name>`) rather than a host name: services are found under
 * whatever names the cluster gives them, but each must be the service it is
 * called as.
 */
function expectIdentity(expected: PeerIdentity) {
  return (_host: string, certificate: PeerCertificate): Error | undefined => {
    const named = identityFromSubjectAltName(certificate.subjectaltname);
    return named === expected
      ? undefined
      : new Error(`the server's certificate names ${named ?? 'no Sotto identity'}, not ${expected}`);
  };
}

/**
 * Mutual TLS as one identity of the platform: presents `files`' certificate,
 * trusts only its CA, and, given `server`, accepts only a server whose
 * certificate names that identity (otherwise the usual host-name check).
 */
export function mutualTlsCredentials(files: TlsFiles, server?: PeerIdentity): ChannelCredentials {
  const context = createSecureContext({
    ca: read(files.ca, 'CA certificate'),
    cert: read(files.cert, 'certificate'),
    key: read(files.key, 'private key'),
    minVersion: TLS_MIN_VERSION,
  });
  return credentials.createFromSecureContext(context, {
    checkServerIdentity: server === undefined ? checkServerIdentity : expectIdentity(server),
  });
}

/** TLS trusting only the CA in `caFile`, without a client certificate: how a client reaches the gateway. */
export function caTlsCredentials(caFile: string): ChannelCredentials {
  return credentials.createFromSecureContext(
    createSecureContext({ ca: read(caFile, 'CA certificate'), minVersion: TLS_MIN_VERSION }),
  );
}
