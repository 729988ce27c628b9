import { createServer, type Server } from 'node:net';
import { DEFAULT_SERVER, parseServerAddress, serverStatus } from './server';

describe('server address', () => {
  it.each(['127.0.0.1:7400', 'chat.example.org:443', '[::1]:7400'])('accepts %s', (address) => {
    expect(parseServerAddress(address)).toBe(address);
  });

  it.each(['127.0.0.1', 'host:0', 'host:70000', 'http://host:7400', ''])('refuses %p', (address) => {
    expect(() => parseServerAddress(address)).toThrow(`is not host:port (for example ${DEFAULT_SERVER})`);
  });
});

describe('serverStatus', () => {
  it('reports a port where nothing speaks gRPC as not serving, with the reason', async () => {
    // A TCP listener that closes every connection: reachable, but no gRPC server.
    const server: Server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const status = await serverStatus(`127.0.0.1:${port}`, { timeoutMs: 1_000 });
      expect(status.serving).toBe(false);
      expect(status.detail).not.toBe('SERVING');
      expect(status.detail.length).toBeGreaterThan(0);
    } finally {
      server.close();
    }
  });
});
