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
