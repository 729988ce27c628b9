import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Absolute path of an executable on PATH, or undefined. */
export function which(bin: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, bin);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export function javaBinary(): string | undefined {
  const home = process.env['JAVA_HOME'];
  if (home !== undefined && home !== '') {
    const java = join(home, 'bin', 'java');
    if (existsSync(java)) return java;
  }
  return which('java');
}

/**
 * Directory holding PostgreSQL's server binaries (initdb and postgres). Debian keeps them out of
 * PATH in /usr/lib/postgresql/<major>/bin. `preferMajor` picks the version an existing data
 * directory was created with, since a different major cannot open it.
 */
export function postgresBinDir(preferMajor?: string): string | undefined {
  const hasBoth = (dir: string): boolean =>
    existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'postgres'));
  const root = '/usr/lib/postgresql';
  let versions: string[] = [];
  try {
    versions = readdirSync(root)
      .filter((v) => /^\d+(\.\d+)?$/.test(v) && hasBoth(join(root, v, 'bin')))
      .sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a));
  } catch {
    // not a Debian-style layout
  }
  if (preferMajor !== undefined && versions.includes(preferMajor)) return join(root, preferMajor, 'bin');
  const initdb = which('initdb');
  const postgres = which('postgres');
  if (initdb !== undefined && postgres !== undefined) {
    const dir = join(initdb, '..');
    if (hasBoth(dir)) return dir;
  }
  const newest = versions[0];
  return newest !== undefined ? join(root, newest, 'bin') : undefined;
}

export interface RunResult {
  code: number | null;
  /** stdout and stderr, interleaved as they came. */
  output: string;
  /** stdout alone, for commands whose answer is there and whose chatter goes to stderr. */
  stdout: string;
}

/** Runs a command to completion, collecting stdout and stderr together (and stdout alone). */
export function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; onOutput?: (chunk: string) => void } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const chunks: string[] = [];
    const stdout: string[] = [];
    const collect = (data: Uint8Array): string => {
      const text = Buffer.from(data).toString('utf8');
      chunks.push(text);
      options.onOutput?.(text);
      return text;
    };
    child.stdout.on('data', (data: Uint8Array) => void stdout.push(collect(data)));
    child.stderr.on('data', collect);
    child.once('error', (err) => reject(new Error(`could not run ${command}: ${err.message}`)));
    child.once('close', (code) => resolve({ code, output: chunks.join(''), stdout: stdout.join('') }));
  });
}
