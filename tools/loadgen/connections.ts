/**
 * What a new client connection costs: --connections times, a fresh channel to
 * the gateway (no subchannel shared with another) makes one grpc.health.v1
 * Check and closes, --concurrency at a time. It reports connections per
 * second, the time from opening a channel to the answer, and, when it started
 * the platform itself, the CPU time the gateway and this process spent per
 * connection.
 *
 *   npm run loadgen:connections -- [--connections 500] [--concurrency 8] [--server HOST:PORT [--ca FILE]] [--json]
 *
 * With --streams N it measures instead what held streams cost (see
 * measureStreams): N idle Connect streams on one gateway, its memory per
 * stream, and live delivery to --sample of them picked at random.
 *
 *   npm run loadgen:connections -- --streams 20000 [--streams-per-channel 50] [--sample 1000]
 *                                  [--hold-seconds 45] [--server HOST:PORT [--ca FILE]] [--report FILE]
 *                                  [--heap-snapshot DIR]
 *
 * With --heap-snapshot DIR the gateway of its own platform writes a V8 heap
 * snapshot into DIR before the streams open and again with them all open.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Metadata, type ChannelCredentials } from '@grpc/grpc-js';
import { gatewayCredentials } from '@sotto/client-sdk';
import { HealthClient } from '@sotto/contracts/generated/health/v1/health';
import { cpuSeconds } from './cpu';
import { runLoad, wholeNumber, type OwnPlatform } from './own-platform';
import { measureStreams, type StreamsOptions } from './streams';

interface Options {
  readonly connections: number;
  readonly concurrency: number;
  readonly server?: string;
  readonly ca?: string;
  readonly json: boolean;
  /** Set with --streams: hold streams instead of opening and closing connections. */
  readonly streams?: StreamsOptions;
  readonly jsonFile?: string;
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
      streams: { type: 'string' },
      'streams-per-channel': { type: 'string', default: '50' },
      sample: { type: 'string', default: '1000' },
      'hold-seconds': { type: 'string', default: '45' },
      report: { type: 'string' },
      'heap-snapshot': { type: 'string' },
    },
  });
  const snapshotDir = values['heap-snapshot'];
  if (snapshotDir !== undefined) {
    if (values.server !== undefined || values.streams === undefined) {
      throw new Error('--heap-snapshot: only with --streams and without --server');
    }
    if (snapshotDir === '') throw new Error('--heap-snapshot: expected a directory');
    mkdirSync(resolve(snapshotDir), { recursive: true });
    // Read by the service launcher (libs/stack) for each service it starts.
    process.env['SOTTO_HEAP_SNAPSHOT_DIR'] = resolve(snapshotDir);
  }
  if (values.report === '') throw new Error('--report: expected a file name');
  return {
    connections: wholeNumber('connections', values.connections, 1_000_000),
    concurrency: wholeNumber('concurrency', values.concurrency, 1000),
    server: values.server,
    ca: values.ca,
    json: values.json ?? false,
    jsonFile: values.report,
    ...(values.streams === undefined
      ? {}
      : {
          streams: {
            streams: wholeNumber('streams', values.streams, 1_000_000),
            // A gateway takes at most 100 streams on one connection.
            streamsPerChannel: wholeNumber('streams-per-channel', values['streams-per-channel'], 100),
            sample: wholeNumber('sample', values.sample, 1_000_000),
            holdSeconds: wholeNumber('hold-seconds', values['hold-seconds'], 24 * 3600),
          },
        }),
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
  own: OwnPlatform | undefined,
): Promise<object> {
  if (options.streams !== undefined) {
    return measureStreams(
      options.streams,
      {
        server,
        ca,
        gatewayMetrics: own?.platform.services.gateway.metrics,
        gatewayPid: pids['gateway'],
        heapSnapshots: process.env['SOTTO_HEAP_SNAPSHOT_DIR'] !== undefined,
      },
      say,
    );
  }
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
