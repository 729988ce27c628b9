import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';

/**
 * The PEM files a client uses for TLS to a server: the CA the server's
 * certificate must chain to (unset: the system's roots), and for mutual TLS
 * the client's own certificate and key.
 */
export interface ClientTlsFiles {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

/**
 * Node TLS options for a client of Kafka, Redis or PostgreSQL that verifies
 * its server: the certificate must chain to `ca` (else to the system's roots)
 * and name the host dialled. Nothing here can turn verification off, and a
 * caller's own options come first so that these win. Files are read now: a
 * replaced certificate takes effect when the process restarts.
 */
export function clientTlsOptions(files: ClientTlsFiles): ConnectionOptions {
  if ((files.cert === undefined) !== (files.key === undefined)) {
    throw new Error('a client certificate needs its private key, and a private key its certificate');
  }
  const read = (path: string): string => readFileSync(path, 'utf8');
  return {
    ...(files.ca === undefined ? {} : { ca: read(files.ca) }),
    ...(files.cert === undefined || files.key === undefined
      ? {}
      : { cert: read(files.cert), key: read(files.key) }),
    rejectUnauthorized: true,
  };
}
