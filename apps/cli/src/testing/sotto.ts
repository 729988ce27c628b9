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

/** As `sotto`, with these environment variables set besides this process's. */
export function sottoWith(env: Record<string, string>, input: string, ...args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: repoRoot(),
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
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
