import { createServer, type Socket } from 'node:net';
import { createSecureContext, TLSSocket } from 'node:tls';
import type { TlsIdentityFiles } from '@sotto/local-infra';
import { readFileSync } from 'node:fs';

/** PostgreSQL's SSLRequest: length 8, then the code 1234.5679. */
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

export interface TlsImpostor {
  /** 127.0.0.1:PORT, where the impostor listens. */
  readonly address: string;
  /** TLS handshakes a client finished with it: a client that refused its certificate finishes none. */
  readonly handshakes: number;
  /** Bytes clients sent inside TLS: a request, a password… */
  readonly bytesReceived: number;
  close(): Promise<void>;
}

/**
 * A server that answers TLS with a certificate of someone else's choosing (a
 * foreign CA's, say) and records what clients tell it: what a client of
 * Kafka, Redis or PostgreSQL meets when an attacker stands where its server
 * should be. With `postgres`, it first answers PostgreSQL's SSLRequest as a
 * server that supports TLS does.
 */
export async function startTlsImpostor(
  identity: TlsIdentityFiles,
  options: { readonly postgres?: boolean } = {},
): Promise<TlsImpostor> {
  const secureContext = createSecureContext({
    cert: readFileSync(identity.cert),
    key: readFileSync(identity.key),
  });
  const sockets = new Set<Socket>();
  let handshakes = 0;
  let bytesReceived = 0;
  const serveTls = (socket: Socket): void => {
    const tls = new TLSSocket(socket, { isServer: true, secureContext });
    sockets.add(tls);
    tls.on('secure', () => handshakes++);
    tls.on('data', (data: Buffer) => (bytesReceived += data.length));
    tls.on('error', () => undefined);
  };
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    if (!options.postgres) {
      serveTls(socket);
      return;
    }
    socket.once('data', (first: Buffer) => {
      if (!first.equals(SSL_REQUEST)) {
        socket.destroy();
        return;
      }
      socket.write('S');
      serveTls(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('impostor has no port');
  return {
    address: `127.0.0.1:${address.port}`,
    get handshakes() {
      return handshakes;
    },
    get bytesReceived() {
      return bytesReceived;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
