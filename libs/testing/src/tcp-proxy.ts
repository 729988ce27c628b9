import { createServer, connect, type Socket } from 'node:net';

export interface TcpProxy {
  /** HOST:PORT (127.0.0.1 unless `listen` says otherwise): connect here to reach the target. */
  readonly address: string;
  /** Drops every connection at once, as a network failure would: no goodbye to either side. */
  cut(): void;
  /** Until resume(), new connections are dropped as they arrive, as if the target were unreachable. */
  pause(): void;
  resume(): void;
  /**
   * Until release(), passes no bytes either way on the connections open now, and closes none: the
   * target stopped answering (a hung process), and calls on them wait.
   */
  hold(): void;
  release(): void;
  close(): Promise<void>;
}

export interface TcpProxyOptions {
  /**
   * The local address the proxy connects to the target from, e.g. "127.0.0.2"
   * (any 127.0.0.0/8 address works on Linux's loopback), so the target sees
   * its clients come from another address.
   */
  readonly from?: string;
  /**
   * The loopback address the proxy listens on (127.0.0.1 by default), e.g.
   * "127.0.0.2": to reach the target by an address its certificate does not name.
   */
  readonly listen?: string;
}

/** A loopback TCP relay whose connections a test can cut mid-call, hold, or refuse for a while. */
export async function startTcpProxy(target: string, options: TcpProxyOptions = {}): Promise<TcpProxy> {
  const [host, port] = [
    target.slice(0, target.lastIndexOf(':')),
    Number(target.slice(target.lastIndexOf(':') + 1)),
  ];
  const sockets = new Set<Socket>();
  let paused = false;
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // A cut connection reports ECONNRESET or EPIPE; that is the point.
    socket.on('error', () => undefined);
  };
  const server = createServer((client) => {
    if (paused) {
      client.on('error', () => undefined);
      client.resetAndDestroy();
      return;
    }
    const upstream = connect({ port, host, localAddress: options.from });
    track(client);
    track(upstream);
    client.pipe(upstream).pipe(client);
  });
  const listen = options.listen ?? '127.0.0.1';
  await new Promise<void>((resolve) => server.listen(0, listen, resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return {
    address: `${listen}:${address.port}`,
    cut: () => {
      for (const socket of sockets) socket.resetAndDestroy();
    },
    pause: () => {
      paused = true;
    },
    resume: () => {
      paused = false;
    },
    hold: () => {
      for (const socket of sockets) socket.pause();
    },
    release: () => {
      for (const socket of sockets) socket.resume();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
