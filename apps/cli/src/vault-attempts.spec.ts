import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, startTestPlatform, type Platform } from '@sotto/testing';

const bin = join(repoRoot(), 'apps/cli/bin/sotto.js');

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the sotto command with `input` on its standard input (closed at once when there is none). */
function sotto(input: string, ...args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: repoRoot() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** A setup step: the suite cannot go on unless the command succeeded. */
async function succeeded(command: Promise<Run>): Promise<Run> {
  const run = await command;
  if (run.code !== 0)
    throw new Error(`setup: sotto exited with ${String(run.code)}:\n${run.stdout}${run.stderr}`);
  return run;
}

describe('spaced vault tries with the sotto command', () => {
  let platform: Platform;
  const profiles = mkdtempSync(join(tmpdir(), 'sotto-cli-vault-'));
  const tag = randomUUID().replace(/-/g, '').slice(0, 8);
  const eve = `eve_${tag}`;
  const password = `eve's backup password ${tag}`;
  const as = (who: string, input: string, ...args: string[]) =>
    sotto(input, '--server', platform.gateway, '--profile', join(profiles, who), ...args);
  /** A stranger on a fresh profile, trying a password on Eve's vault. */
  const stranger = (guess: string) =>
    as(`stranger-${randomUUID()}`, `${guess}\n`, 'backup', 'restore', eve, '--password-stdin');
  const vaultStatus = async () =>
    JSON.parse((await succeeded(as(eve, '', 'backup', 'status', '--json'))).stdout) as {
      vaultAttemptsLeft: number;
      vaultFailedAttempts: number;
      vaultNextTryAfterMs: number;
    };
  /** Waits, by asking the vault, until its next try is allowed (the waits here are 15 s). */
  const untilTryAllowed = async (): Promise<void> => {
    const deadline = Date.now() + 60_000;
    while ((await vaultStatus()).vaultNextTryAfterMs > 0) {
      if (Date.now() > deadline) throw new Error('the wait did not end');
    }
  };

  beforeAll(async () => {
    // Waits of 15 s before each try after the third: longer than a few runs of the command, short
    // enough for a test to wait out. The hourly login limits have tests of their own; here they
    // would stop the stranger first (every login comes from 127.0.0.1, which other suites share).
    // The vault's rate limits are on: the daily reset limit is under test.
    platform = await startTestPlatform({
      'key-vault': {
        SOTTO_RATE_LIMITS: 'on',
        KEY_VAULT_TRY_DELAYS: '15,15,15,15,15,15,15',
        VAULT_LOGIN_LIMIT_PER_ACCOUNT: '1000',
        VAULT_LOGIN_LIMIT_PER_SOURCE: '1000',
      },
    });
    await succeeded(as(eve, '', 'register', eve));
    await succeeded(as(eve, `${password}\n`, 'backup', 'create', '--password-stdin'));
  });

  afterAll(async () => {
    await platform?.stop();
    rmSync(profiles, { recursive: true, force: true });
  });

  it("refuses a stranger's fourth try with the wait, and Eve's receive tells her, as text and JSON", async () => {
    for (const left of [9, 8]) {
      expect(await stranger(`guess ${left}`)).toEqual({
        code: 1,
        stdout: '',
        stderr: `sotto: wrong password; ${left} attempts left\n`,
      });
    }
    expect(await stranger('guess 7')).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(
        /^sotto: wrong password; 7 attempts left; the next try is allowed in \d+ s\n$/,
      ) as string,
    });
    expect(await stranger('guess 6')).toMatchObject({
      code: 1,
      stdout: '',
      stderr: expect.stringMatching(
        /^sotto: password tries are spaced out: the next is allowed in \d+ s \(7 attempts left\); try again in \d+ s\n$/,
      ) as string,
    });

    const received = await as(eve, '', 'receive');
    expect(received).toMatchObject({ code: 0, stderr: '' });
    expect(received.stdout).toMatch(
      /^\*\*\* a wrong backup password was tried 3 times; 7 attempts left(; the next try is allowed in \d+ s)? \(if it was not you: `sotto backup reset-attempts`\)\n$/,
    );
    const json = await as(eve, '', 'receive', '--json');
    expect(JSON.parse(json.stdout)).toEqual({
      vaultAttemptFailed: {
        attemptsLeft: 7,
        failedAttempts: 3,
        nextTryAfterMs: expect.any(Number) as number,
        destroyed: false,
      },
    });
    expect((await as(eve, '', 'backup', 'status')).stdout).toMatch(
      /\npassword vault: set \(7 attempts left; 3 wrong passwords tried(; next try in \d+ s)?\)\n$/,
    );
  });

  it('answers the next try once the wait is over, then waits again', async () => {
    await untilTryAllowed();
    expect(await stranger('guess 5')).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(
        /^sotto: wrong password; 6 attempts left; the next try is allowed in \d+ s\n$/,
      ) as string,
    });
    expect((await stranger('guess 4')).stderr).toMatch(
      /^sotto: password tries are spaced out: .*\(6 attempts left\)/,
    );
    expect(await vaultStatus()).toMatchObject({ vaultAttemptsLeft: 6, vaultFailedAttempts: 4 });
  });

  it('clears the count with `backup reset-attempts`, once a day', async () => {
    expect(await as(eve, '', 'backup', 'reset-attempts')).toEqual({
      code: 0,
      stdout: 'password vault: the count is cleared (10 attempts left)\n',
      stderr: '',
    });
    expect(await as(eve, '', 'receive')).toEqual({ code: 0, stdout: '', stderr: '' });
    // With nothing to clear, a reset costs nothing; with something, the day's reset is spent.
    expect((await as(eve, '', 'backup', 'reset-attempts')).code).toBe(0);
    expect((await stranger('after the reset')).stderr).toBe('sotto: wrong password; 9 attempts left\n');
    expect(await as(eve, '', 'backup', 'reset-attempts')).toMatchObject({
      code: 1,
      stdout: '',
      stderr: expect.stringMatching(
        /^sotto: the count of tries was reset 1 time\(s\) today already; try again in \d+ s\n$/,
      ) as string,
    });
  });

  it('lets the right password through once the wait is over', async () => {
    for (const guess of ['one', 'two']) expect((await stranger(guess)).code).toBe(1);
    expect((await stranger(password)).stderr).toMatch(/^sotto: password tries are spaced out: /);
    await untilTryAllowed();
    const restored = await as('eve-new-phone', `${password}\n`, 'backup', 'restore', eve, '--password-stdin');
    expect(restored).toMatchObject({ code: 0, stderr: '' });
    expect(restored.stdout).toMatch(new RegExp(`^restored ${eve} from backup version 1: `));
    expect(JSON.parse((await as('eve-new-phone', '', 'backup', 'status', '--json')).stdout)).toMatchObject({
      vaultAttemptsLeft: 10,
      vaultFailedAttempts: 0,
    });
  });
});
