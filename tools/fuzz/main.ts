/**
 * `npm run fuzz`: sends every method of the gateway's public API --requests
 * malformed and hostile requests (10,000 each by default) and reports, per
 * method, how many got each gRPC status code. It passes when no service
 * process exited, no answer was INTERNAL or UNKNOWN (each one's input is
 * saved to a file), a victim account's envelopes, prekeys and backups are
 * unchanged, and two new users can still talk afterwards.
 *
 *   npm run fuzz -- [--requests 10000] [--concurrency 16] [--minutes 90] [--seed N]
 *                   [--method PART]... [--inputs DIR] [--max-receive-bytes 4194304]
 *                   [--server HOST:PORT [--ca FILE]] [--json]
 *   npm run fuzz -- --replay FILE [--server HOST:PORT [--ca FILE]]
 *
 * Without --server it starts its own Kafka, Redis, PostgreSQL and six
 * services in a scratch directory, exactly as `npm start` runs them (rate
 * limits off, failed-authentication limits out of reach, so that authenticated
 * calls keep reaching the handlers), and stops them afterwards. --server must
 * be a loopback address: the fuzzer attacks only a platform on this machine.
 */
import { readFileSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gatewayCredentials, gatewayTrust } from '@sotto/client-sdk';
import { startScratchPlatform } from '@sotto/stack';
import { fuzz, fuzzEnvironment, replay, type FuzzTarget } from './fuzzer';
import { codeName, formatReport } from './report';
import { DEFAULT_MAX_RECEIVE_BYTES } from './wire';

interface Options {
  readonly requests: number;
  readonly concurrency: number;
  readonly minutes: number;
  readonly seed: number;
  readonly methods: readonly string[];
  readonly inputs: string;
  readonly maxReceiveBytes: number;
  readonly server?: string;
  readonly ca?: string;
  readonly replay?: string;
  readonly json: boolean;
}

const say = (line: string): void => void process.stderr.write(`[fuzz] ${line}\n`);

function whole(name: string, text: string | undefined, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new Error(`--${name}: expected a whole number from 1 to ${max}, got ${text}`);
  }
  return value;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      requests: { type: 'string', default: '10000' },
      concurrency: { type: 'string', default: '16' },
      minutes: { type: 'string', default: '90' },
      seed: { type: 'string' },
      method: { type: 'string', multiple: true, default: [] },
      inputs: { type: 'string' },
      'max-receive-bytes': { type: 'string', default: String(DEFAULT_MAX_RECEIVE_BYTES) },
      server: { type: 'string' },
      ca: { type: 'string' },
      replay: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 32) : Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
    throw new Error(`--seed: expected a whole number from 0 to 4294967295, got ${values.seed}`);
  }
  return {
    requests: whole('requests', values.requests, 10_000_000),
    concurrency: whole('concurrency', values.concurrency, 256),
    minutes: whole('minutes', values.minutes, 24 * 60),
    seed,
    methods: values.method,
    inputs: values.inputs ?? join('.sotto', 'fuzz', new Date().toISOString().replace(/[:.]/g, '-')),
    maxReceiveBytes: whole('max-receive-bytes', values['max-receive-bytes'], 2 ** 31 - 1),
    server: values.server,
    ca: values.ca,
    replay: values.replay,
    json: values.json ?? false,
  };
}

/** Refuses any --server that is not this machine: the fuzzer is not for other people's servers. */
async function requireLoopback(server: string): Promise<void> {
  const host = server.slice(0, server.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  const addresses = isIP(host) ? [{ address: host }] : await lookup(host, { all: true });
  const loopback = (address: string): boolean => /^127\./.test(address) || address === '::1';
  if (addresses.length === 0 || !addresses.every(({ address }) => loopback(address))) {
    throw new Error(`--server ${server}: the fuzzer only attacks a platform on a loopback address`);
  }
}

async function runAgainst(options: Options, target: FuzzTarget): Promise<boolean> {
  if (options.replay !== undefined) {
    const outcome = await replay(target, options.replay, say);
    process.stdout.write(`${codeName(outcome.code)} ${outcome.details}\n`);
    return outcome.code !== 13 && outcome.code !== 2;
  }
  const report = await fuzz(target, {
    requestsPerMethod: options.requests,
    concurrency: options.concurrency,
    timeLimitMs: options.minutes * 60_000,
    seed: options.seed,
    callTimeoutMs: 60_000,
    inputsDir: options.inputs,
    maxReceiveBytes: options.maxReceiveBytes,
    methods: options.methods,
    say,
  });
  process.stdout.write(options.json ? `${JSON.stringify(report)}\n` : `${formatReport(report)}\n`);
  return report.passed;
}

async function main(): Promise<boolean> {
  const options = parseOptions(process.argv.slice(2));
  if (options.server !== undefined) {
    await requireLoopback(options.server);
    const trust = gatewayTrust(options.server, { ca: options.ca });
    const ca = trust.source === 'system' ? undefined : trust.ca;
    return runAgainst(options, {
      gateway: {
        address: options.server,
        credentials: gatewayCredentials(options.server, { ca: options.ca }),
        ca,
      },
      caPem: ca === undefined ? undefined : readFileSync(ca),
    });
  }
  const own = await startScratchPlatform('sotto-fuzz-stack', say, fuzzEnvironment());
  try {
    const { gateway } = own.platform;
    return await runAgainst(options, {
      gateway: { address: gateway, credentials: gatewayCredentials(gateway, { ca: own.ca }), ca: own.ca },
      caPem: readFileSync(own.ca),
      processes: own.platform.services,
    });
  } finally {
    await own.stop();
  }
}

main().then(
  (passed) => process.exit(passed ? 0 : 1),
  (error: unknown) => {
    say((error as Error).message);
    process.exit(1);
  },
);
