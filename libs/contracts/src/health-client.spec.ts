import { createServer, type Socket } from 'node:net';
import { credentials } from '@grpc/grpc-js';
import { checkHealth, tlsFailure } from './health-client';

// What is asked of these peers never gets as far as a certificate: any TLS credentials do.
const tls = credentials.createSsl();

async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('checkHealth', () => {
  it('says a server is unreachable, and why, when nothing listens', async () => {
    const port = await unusedPort();
    expect(await checkHealth(`127.0.0.1:${port}`, tls, '', 1_000)).toBe(
      `unreachable (connect ECONNREFUSED 127.0.0.1:${port})`,
    );
  });

  it('says when a peer accepts but never answers', async () => {
    // Accepts TCP and says nothing: no HTTP/2 settings, so the call can only time out.
    const sockets: Socket[] = [];
    const server = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    try {
      expect(await checkHealth(`127.0.0.1:${port}`, tls, '', 500)).toBe('no answer within 500 ms');
    } finally {
      sockets.forEach((socket) => socket.destroy());
      server.close();
    }
  });
});

describe('tlsFailure', () => {
  it.each([
    [
      'No connection established. Last error: Error: self-signed certificate in certificate chain',
      'certificate not trusted (self-signed certificate in certificate chain)',
    ],
    [
      'No connection established. Last error: Error: unable to verify the first certificate',
      'certificate not trusted (unable to verify the first certificate)',
    ],
    [
      "No connection established. Last error: Error [ERR_TLS_CERT_ALTNAME_INVALID]: Hostname/IP does not match certificate's altnames: IP: 10.0.0.1 is not in the cert's list: 127.0.0.1",
      "certificate not trusted (Hostname/IP does not match certificate's altnames: IP: 10.0.0.1 is not in the cert's list: 127.0.0.1)",
    ],
    ['No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:7400', undefined],
  ])('reads %p', (details, expected) => {
    expect(tlsFailure(details)).toBe(expected);
  });
});
