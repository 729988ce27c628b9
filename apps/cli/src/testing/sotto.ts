import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '@sotto/testing';

const bin = join(repoRoot(), 'apps/cli/bin/sotto.js');

export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the real `sotto` command with `input` on its standard input (closed at once when empty). */
export function sotto(input: string, ...args: string[]): Promise<Run> {
  return sottoWith({}, input, ...args);
}

/** `sotto`, with these variables added to its environment (e.g. a pinned sealed-sender trust root). */
export function sottoWith(
  env: Readonly<Record<string, string>>,
  input: string,
  ...args: string[]
): Promise<Run> {
  return run(env, input, args);
}

/** Runs `sotto`; `watch` sees its standard output so far each time more arrives. */
function run(
  env: Readonly<Record<string, string>>,
  input: string,
  args: readonly string[],
  watch?: (stdout: string) => void,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: repoRoot(),
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      watch?.(stdout);
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** A setup step: the test cannot go on unless the command succeeded; its output. */
export async function succeeded(command: Promise<Run>): Promise<string> {
  const { code, stdout, stderr } = await command;
  if (code !== 0) throw new Error(`setup: sotto exited with ${String(code)}:\n${stdout}${stderr}`);
  return stdout;
}

/** A `sotto link` running in the background: its link code and fingerprint once printed, and how it ended. */
export interface Linking {
  readonly code: string;
  readonly fingerprint: string;
  readonly done: Promise<Run>;
}

/**
 * Starts `sotto … link …` (`args` as for `sottoWith`, the link command among them) and resolves
 * once it has printed its link code and fingerprint, for another device to approve.
 */
export function sottoLinking(env: Readonly<Record<string, string>>, ...args: string[]): Promise<Linking> {
  return new Promise((resolve, reject) => {
    const done = run(env, '', args, (stdout) => {
      const code = /^link code: (\S+)$/m.exec(stdout)?.[1];
      const fingerprint = /^fingerprint: ([\d ]+)$/m.exec(stdout)?.[1];
      if (code && fingerprint) resolve({ code, fingerprint, done });
    });
    done.then(
      (ended) => reject(new Error(`link ended before printing a code: ${ended.stdout}${ended.stderr}`)),
      reject,
    );
  });
}
