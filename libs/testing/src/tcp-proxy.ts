import { createServer, connect, type Socket } from 'node:net';

export interface TcpProxy {
  /** 127.0.0.1:PORT: connect here to reach the target. */
  readonly address: string;
  /** Drops every connection at once, as a network failure would: no goodbye to either side. */
  cut(): void;
  close(): Promise<void>;
}

/** A loopback TCP relay whose connections a test can cut mid-call. */
export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const [host, port] = [
    target.slice(0, target.lastIndexOf(':')),
    Number(target.slice(target.lastIndexOf(':') + 1)),
  ];
  const sockets = new Set<Socket>();
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // A cut connection reports ECONNRESET or EPIPE; that is the point.
    socket.on('error', () => undefined);
  };
  const server = createServer((client) => {
    const upstream = connect(port, host);
    track(client);
    track(upstream);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return {
    address: `127.0.0.1:${address.port}`,
    cut: () => {
      for (const socket of sockets) socket.resetAndDestroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
