import { writeFileSync } from 'node:fs';
import {
  startScratchPlatform,
  type PlatformOptions,
  type ScratchPlatform,
  type ScratchPlatformOptions,
} from '@sotto/stack';

/** A command-line count from 1 to `max`, or an error naming the option. */
export function wholeNumber(name: string, text: string | undefined, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new Error(`--${name}: expected a whole number from 1 to ${max}, got ${text}`);
  }
  return value;
}

export type OwnPlatform = ScratchPlatform;

/** The platform a load generator runs against when not given --server (see startScratchPlatform). */
export function startOwnPlatform(
  say: (line: string) => void,
  env: PlatformOptions['env'] = {},
  options: ScratchPlatformOptions = {},
): Promise<OwnPlatform> {
  return startScratchPlatform('sotto-loadgen-stack', say, env, options);
}

/**
 * Which Redis a load generator's own platform runs on: SOTTO_REDIS, as `npm start` reads it
 * (server, the default, or cluster: 3 masters and 3 replicas).
 */
export function ownRedis(value = process.env['SOTTO_REDIS']): 'server' | 'cluster' {
  if (value === undefined || value === '' || value === 'server') return 'server';
  if (value === 'cluster') return 'cluster';
  throw new UsageError(`SOTTO_REDIS: expected server or cluster, got ${value}`);
}

/** Options a load generator could not take: one line on stderr and exit code 2. */
export class UsageError extends Error {}

/**
 * A load generator's whole run: parses its options, runs against
 * `--server` or else a platform of its own (CPU measured per process, `env`
 * added to its services, handed to `run` as `own`) that is stopped
 * afterwards, and prints the report as JSON on stdout, on one line with
 * --json, and writes it to `jsonFile` when the options name one. The
 * gateway's certificate is verified with the own platform's CA, or against
 * `--server` with `--ca` (else as the SDK finds it: SOTTO_CA, the system's
 * roots, a checkout's stack.json). Options it cannot take are one line on
 * stderr and exit code 2; any other failure one line and exit code 1.
 */
export function runLoad<
  O extends {
    readonly server?: string;
    readonly ca?: string;
    readonly json?: boolean;
    readonly jsonFile?: string;
    readonly plaintextStorage?: boolean;
  },
>(
  parseOptions: () => O,
  say: (line: string) => void,
  run: (
    options: O,
    server: string,
    pids: Record<string, number>,
    ca: string | undefined,
    own: OwnPlatform | undefined,
  ) => Promise<object>,
  env: (options: O) => PlatformOptions['env'] = () => ({}),
): void {
  const report = async (
    options: O,
    server: string,
    pids: Record<string, number>,
    ca: string | undefined,
    own?: OwnPlatform,
  ): Promise<void> => {
    const result = await run(options, server, { loadgen: process.pid, ...pids }, ca, own);
    if (options.jsonFile !== undefined) {
      writeFileSync(options.jsonFile, `${JSON.stringify(result, null, 2)}\n`);
      say(`report written to ${options.jsonFile}`);
    }
    process.stdout.write(
      options.json === true ? `${JSON.stringify(result)}\n` : `${JSON.stringify(result, null, 2)}\n`,
    );
  };
  const main = async (): Promise<void> => {
    let options: O;
    try {
      options = parseOptions();
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    if (options.server) {
      await report(options, options.server, {}, options.ca);
      return;
    }
    const own = await startOwnPlatform(say, env(options), {
      plaintextStorage: options.plaintextStorage,
      redisCluster: ownRedis() === 'cluster',
    });
    try {
      await report(options, own.platform.gateway, own.pids, own.ca, own);
    } finally {
      await own.stop();
    }
  };
  main().catch((error: unknown) => {
    say((error as Error).message);
    process.exit(error instanceof UsageError ? 2 : 1);
  });
}
