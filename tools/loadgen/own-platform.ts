import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureSystemPackages, startInfrastructure, type Infrastructure } from '@sotto/local-infra';
import {
  everyService,
  localInfraEndpoints,
  preparePlatformPki,
  startPlatform,
  type Platform,
  type PlatformOptions,
} from '@sotto/stack';

/** A command-line count from 1 to `max`, or an error naming the option. */
export function wholeNumber(name: string, text: string | undefined, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new Error(`--${name}: expected a whole number from 1 to ${max}, got ${text}`);
  }
  return value;
}

export interface OwnPlatform {
  readonly platform: Platform;
  /** Every process whose CPU time is measured: the six services and Kafka, Redis, PostgreSQL. */
  readonly pids: Record<string, number>;
  /** The CA its gateway's certificate is issued by. */
  readonly ca: string;
  stop(): Promise<void>;
}

/**
 * Kafka, Redis, PostgreSQL, a SoftHSM2 token and the six services in a
 * scratch directory, exactly as `npm start` runs them (the servers over
 * mutual TLS, unless `plaintextStorage`, to measure what it costs) but with
 * SOTTO_RATE_LIMITS=off (a load generator is the script the limits are
 * there to stop); `env` adds variables to some services.
 */
export async function startOwnPlatform(
  say: (line: string) => void,
  env: PlatformOptions['env'] = {},
  { plaintextStorage = false }: { readonly plaintextStorage?: boolean } = {},
): Promise<OwnPlatform> {
  const workDir = mkdtempSync(join(tmpdir(), 'sotto-loadgen-stack-'));
  let infra: Infrastructure | undefined;
  let platform: Platform | undefined;
  const stop = async (): Promise<void> => {
    await platform?.stop();
    await infra?.stop();
    rmSync(workDir, { recursive: true, force: true });
  };
  try {
    await ensureSystemPackages();
    say(
      `starting Kafka, Redis, PostgreSQL (${plaintextStorage ? 'plaintext' : 'TLS'}) and the six services, with SOTTO_RATE_LIMITS=off`,
    );
    const tls = await preparePlatformPki(join(workDir, 'tls'));
    infra = await startInfrastructure({
      dataDir: join(workDir, 'infra'),
      ...(plaintextStorage ? {} : { tls }),
    });
    platform = await startPlatform({
      infra: localInfraEndpoints(infra, tls),
      logDir: join(workDir, 'logs'),
      backupBlobDir: join(workDir, 'blobs'),
      env: everyService({ SOTTO_RATE_LIMITS: 'off' }, env),
    });
    const pids: Record<string, number> = {};
    for (const service of Object.values(platform.services)) pids[service.name] = service.pid;
    for (const backing of [infra.kafka, infra.redis, infra.postgres]) pids[backing.name] = backing.pid;
    return { platform, pids, ca: tls.ca, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * A load generator's whole run: parses its options, runs against
 * `--server` or else a platform of its own (CPU measured per process, `env`
 * added to its services) that is stopped afterwards, and prints the report
 * as JSON on stdout, on one line with --json. The gateway's certificate is
 * verified with the own platform's CA, or against `--server` with `--ca` (else
 * as the SDK finds it: SOTTO_CA, the system's roots, a checkout's stack.json).
 * Any failure, bad options included, is one line on stderr and exit code 1.
 */
export function runLoad<
  O extends {
    readonly server?: string;
    readonly ca?: string;
    readonly json: boolean;
    readonly plaintextStorage?: boolean;
  },
>(
  parseOptions: () => O,
  say: (line: string) => void,
  run: (options: O, server: string, pids: Record<string, number>, ca: string | undefined) => Promise<object>,
  env: (options: O) => PlatformOptions['env'] = () => ({}),
): void {
  const report = async (
    options: O,
    server: string,
    pids: Record<string, number>,
    ca: string | undefined,
  ): Promise<void> => {
    const result = await run(options, server, { loadgen: process.pid, ...pids }, ca);
    process.stdout.write(
      options.json ? `${JSON.stringify(result)}\n` : `${JSON.stringify(result, null, 2)}\n`,
    );
  };
  const main = async (): Promise<void> => {
    const options = parseOptions();
    if (options.server) {
      await report(options, options.server, {}, options.ca);
      return;
    }
    const own = await startOwnPlatform(say, env(options), { plaintextStorage: options.plaintextStorage });
    try {
      await report(options, own.platform.gateway, own.pids, own.ca);
    } finally {
      await own.stop();
    }
  };
  main().catch((error: unknown) => {
    say((error as Error).message);
    process.exit(1);
  });
}
