/**
 * What a new client connection costs: --connections times, a fresh channel to
 * the gateway (no subchannel shared with another) makes one grpc.health.v1
 * Check and closes, --concurrency at a time. It reports connections per
 * second, the time from opening a channel to the answer, and, when it started
 * the platform itself, the CPU time the gateway and this process spent per
 * connection.
 *
 *   npm run loadgen:connections -- [--connections 500] [--concurrency 8] [--server HOST:PORT [--ca FILE]] [--json]
 */
import { parseArgs } from 'node:util';
import { Metadata, type ChannelCredentials } from '@grpc/grpc-js';
import { gatewayCredentials } from '@sotto/client-sdk';
import { HealthClient } from '@sotto/contracts/generated/health/v1/health';
import { cpuSeconds } from './cpu';
import { runLoad, wholeNumber } from './own-platform';

interface Options {
  readonly connections: number;
  readonly concurrency: number;
  readonly server?: string;
  readonly ca?: string;
  readonly json: boolean;
}

const say = (line: string): void => void process.stderr.write(`[loadgen:connections] ${line}\n`);

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      connections: { type: 'string', default: '500' },
      concurrency: { type: 'string', default: '8' },
      server: { type: 'string' },
      ca: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  return {
    connections: wholeNumber('connections', values.connections, 1_000_000),
    concurrency: wholeNumber('concurrency', values.concurrency, 1000),
    server: values.server,
    ca: values.ca,
    json: values.json ?? false,
  };
}

/**
 * One connection: a channel of its own, a TLS 1.3 handshake verifying the
 * gateway's certificate, one health check, closed. Resolves with its milliseconds.
 */
function connectOnce(server: string, tls: ChannelCredentials): Promise<number> {
  const started = process.hrtime.bigint();
  // A local subchannel pool: grpc-js would otherwise reuse one connection for every channel to the server.
  const client = new HealthClient(server, tls, {
    'grpc.use_local_subchannel_pool': 1,
  });
  return new Promise<number>((resolve, reject) => {
    client.check({ service: '' }, new Metadata(), { deadline: Date.now() + 10_000 }, (error) => {
      client.close();
      if (error) reject(error);
      else resolve(Number(process.hrtime.bigint() - started) / 1e6);
    });
  });
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

async function run(
  options: Options,
  server: string,
  pids: Record<string, number>,
  ca: string | undefined,
): Promise<object> {
  const tls = gatewayCredentials(server, { ca });
  // Warm up: the first connections pay for loading code, not for the connection.
  for (let i = 0; i < 20; i++) await connectOnce(server, tls);
  say(`opening ${options.connections} connections, ${options.concurrency} at a time`);
  const measured = { gateway: pids['gateway'], loadgen: pids['loadgen'] };
  const roots = Object.fromEntries(
    Object.entries(measured).flatMap(([name, pid]) => (pid === undefined ? [] : [[name, pid]])),
  );
  const cpuBefore = cpuSeconds(roots);
  const started = process.hrtime.bigint();
  const times: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      while (next < options.connections) {
        next++;
        times.push(await connectOnce(server, tls));
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpuAfter = cpuSeconds(roots);
  times.sort((a, b) => a - b);
  const round = (value: number): number => Number(value.toFixed(3));
  return {
    connections: options.connections,
    concurrency: options.concurrency,
    seconds: round(seconds),
    connectionsPerSecond: Math.round(options.connections / seconds),
    connectMs: {
      p50: round(percentile(times, 50)),
      p95: round(percentile(times, 95)),
      p99: round(percentile(times, 99)),
    },
    cpuMsPerConnection: Object.fromEntries(
      Object.keys(roots).map((name) => [
        name,
        round((((cpuAfter[name] ?? 0) - (cpuBefore[name] ?? 0)) * 1000) / options.connections),
      ]),
    ),
  };
}

runLoad(() => parseOptions(process.argv.slice(2)), say, run);
