import { createServer, type Socket } from 'node:net';
import { checkHealth } from './health-client';

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
    expect(await checkHealth(`127.0.0.1:${port}`, '', 1_000)).toBe(
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
      expect(await checkHealth(`127.0.0.1:${port}`, '', 500)).toBe('no answer within 500 ms');
    } finally {
      sockets.forEach((socket) => socket.destroy());
      server.close();
    }
  });
});
