import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** Linux's default when /proc does not say: where the kernel takes the local ports of outgoing connections. */
const DEFAULT_EPHEMERAL: readonly [number, number] = [32768, 60999];
/** Below this, ports are left to well-known and registered services. */
const LOWEST = 10_000;
/** Fewer ports than this outside the ephemeral range, and the kernel picks (port 0) instead. */
const ENOUGH = 2_000;

/** The kernel's range for ephemeral ports (net.ipv4.ip_local_port_range). */
export function ephemeralPortRange(
  read: () => string = () => readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8'),
): readonly [number, number] {
  try {
    const [low, high] = read().trim().split(/\s+/).map(Number);
    if (
      low !== undefined &&
      high !== undefined &&
      Number.isInteger(low) &&
      Number.isInteger(high) &&
      low <= high
    ) {
      return [low, high];
    }
  } catch {
    // Not Linux, or /proc hidden: assume the default.
  }
  return DEFAULT_EPHEMERAL;
}

/**
 * The ports a harness server may take: those outside the ephemeral range, above
 * LOWEST. A port the kernel picks for a listener (port 0) comes from the same
 * range as the local ports of outgoing connections, so between our release of it
 * and the server's bind, any client in the run (Kafka's, PostgreSQL's, gRPC's)
 * can take it as its own end: the server then fails with EADDRINUSE. Ports
 * outside that range are never taken that way. Empty when too few are left.
 */
export function listeningPortRanges(
  ephemeral: readonly [number, number] = ephemeralPortRange(),
): Array<[number, number]> {
  const [low, high] = ephemeral;
  const ranges: Array<[number, number]> = [];
  if (low - 1 >= LOWEST) ranges.push([LOWEST, low - 1]);
  if (high + 1 <= 65535) ranges.push([Math.max(high + 1, LOWEST), 65535]);
  const size = ranges.reduce((sum, [from, to]) => sum + to - from + 1, 0);
  return size >= ENOUGH ? ranges : [];
}

/**
 * Ports that fetch() refuses to connect to (the Fetch standard's "bad ports"), which would make
 * a server's /metrics unreadable from a test: those from LOWEST up, where the choice falls.
 */
export const FETCH_BLOCKED_PORTS: ReadonlySet<number> = new Set([10080]);

/** Ports this process handed out lately: a server may not have bound one yet, so it is not handed out again. */
const handedOut = new Set<number>();
const HANDED_OUT_KEPT = 4_096;

function remember(port: number): number {
  handedOut.add(port);
  if (handedOut.size > HANDED_OUT_KEPT) {
    const oldest = handedOut.values().next().value;
    if (oldest !== undefined) handedOut.delete(oldest);
  }
  return port;
}

function randomPort(ranges: ReadonlyArray<readonly [number, number]>): number {
  const size = ranges.reduce((sum, [from, to]) => sum + to - from + 1, 0);
  let pick = Math.floor(Math.random() * size);
  for (const [from, to] of ranges) {
    if (pick <= to - from) return from + pick;
    pick -= to - from + 1;
  }
  throw new Error('no port in the ranges');
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago, for a server the caller
 * is about to start. Chosen at random outside the kernel's ephemeral range (see
 * listeningPortRanges), checked by binding it, and not one this process handed
 * out before; where too few such ports exist, the kernel picks one.
 */
export async function freePort(): Promise<number> {
  const ranges = listeningPortRanges();
  for (let attempt = 0; ranges.length > 0 && attempt < 200; attempt++) {
    const port = randomPort(ranges);
    if (!handedOut.has(port) && !FETCH_BLOCKED_PORTS.has(port) && (await isPortFree(port)))
      return remember(port);
  }
  for (;;) {
    const port = await kernelPort();
    if (!handedOut.has(port)) return remember(port);
  }
}

function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('could not determine a free port'));
        return;
      }
      const { port } = address;
      server.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/** Whether 127.0.0.1:port can be bound right now. */
export function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => {
      server.close(() => resolve(true));
    });
  });
}
