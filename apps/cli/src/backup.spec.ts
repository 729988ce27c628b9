import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
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
async function succeeded(command: Promise<Run>): Promise<void> {
  const { code, stdout, stderr } = await command;
  if (code !== 0) throw new Error(`setup: sotto exited with ${String(code)}:\n${stdout}${stderr}`);
}

describe('backups with the sotto command', () => {
  let platform: Platform;
  const profiles = mkdtempSync(join(tmpdir(), 'sotto-cli-backup-'));
  const tag = randomUUID().replace(/-/g, '').slice(0, 8);
  const cat = `cat_${tag}`;
  const dan = `dan_${tag}`;
  const password = `my backup password ${tag}`;
  const as = (who: string, input: string, ...args: string[]) =>
    sotto(input, '--server', platform.gateway, '--profile', join(profiles, who), ...args);

  beforeAll(async () => {
    // Every vault login comes from 127.0.0.1, whose per-source allowance other suites of this run share.
    platform = await startTestPlatform({ 'key-vault': { VAULT_LOGIN_LIMIT_PER_SOURCE: '1000' } });
    for (const name of [cat, dan]) await succeeded(as(name, '', 'register', name));
    await succeeded(as(cat, '', 'send', dan, 'before the backup'));
    const received = await as(dan, '', 'receive', '--wait', '3');
    if (!received.stdout.includes('before the backup')) {
      throw new Error(
        `setup: Dan did not receive Cat's first message:\n${received.stdout}${received.stderr}`,
      );
    }
  });

  afterAll(async () => {
    await platform?.stop();
    rmSync(profiles, { recursive: true, force: true });
  });

  it('shows no backup before the first one', async () => {
    expect(await as(cat, '', 'backup', 'status')).toEqual({
      code: 0,
      stdout: 'no backup yet\nversions kept: 0; quota used: 0 of 2147483648 bytes\npassword vault: not set\n',
      stderr: '',
    });
  });

  it('creates a password-protected backup, prints the recovery key once, and reports it', async () => {
    const made = await as(cat, `${password}\n`, 'backup', 'create', '--password-stdin');
    expect(made.code).toBe(0);
    expect(made.stderr).toBe('');
    const lines = made.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^backup version 1 uploaded \(\d+ bytes\); the recovery key is also protected/);
    expect(lines.filter((line) => /^[a-z0-9]{64}$/.test(line))).toHaveLength(1);

    // The next backup is under the same key, and does not print it again.
    const next = await as(cat, '', 'backup', 'create');
    expect(next).toMatchObject({ code: 0, stderr: '' });
    expect(next.stdout).toBe(
      `backup version 2 uploaded (${/\((\d+) bytes\)/.exec(next.stdout)?.[1]} bytes)\nencrypted under the recovery key shown with your first backup\n`,
    );
    expect(next.stdout).not.toMatch(/^[a-z0-9]{64}$/m);

    const status = await as(cat, '', 'backup', 'status', '--json');
    expect(JSON.parse(status.stdout)).toMatchObject({
      newest: { version: 2, size: expect.any(Number) as number },
      versions: 2,
      passwordVault: true,
      vaultAttemptsLeft: 10,
      vaultDestroyed: false,
    });
  });

  it('refuses a wrong password in one line, spending a try, and leaves no profile', async () => {
    const profile = `cat-wrong-${randomUUID()}`;
    expect(await as(profile, 'not my password\n', 'backup', 'restore', cat, '--password-stdin')).toEqual({
      code: 1,
      stdout: '',
      stderr: 'sotto: wrong password; 9 attempts left\n',
    });
    expect(existsSync(join(profiles, profile))).toBe(false);
    expect(JSON.parse((await as(cat, '', 'backup', 'status', '--json')).stdout)).toMatchObject({
      vaultAttemptsLeft: 9,
    });
  });

  it('refuses bad invocations of restore in one line, changing nothing', async () => {
    const fresh = `cat-bad-${randomUUID()}`;
    expect(await as(fresh, '', 'backup', 'restore', cat, '--password-stdin')).toEqual({
      code: 1,
      stdout: '',
      stderr: 'sotto: no password on standard input\n',
    });
    expect(
      await as(fresh, 'x\n', 'backup', 'restore', cat, '--password-stdin', '--recovery-key-stdin'),
    ).toMatchObject({
      code: 1,
      stderr: 'sotto: give exactly one of --recovery-key-stdin and --password-stdin\n',
    });
    expect(await as(fresh, 'not a key\n', 'backup', 'restore', cat, '--recovery-key-stdin')).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/^sotto: .*recovery key.*\n$/) as string,
    });
    expect(
      await as(fresh, `${password}\n`, 'backup', 'restore', `nobody_${tag}`, '--password-stdin'),
    ).toEqual({
      code: 1,
      stdout: '',
      stderr: 'sotto: username: has no password vault\n',
    });
    // A profile that holds an account is never overwritten.
    expect(await as(dan, `${password}\n`, 'backup', 'restore', cat, '--password-stdin')).toMatchObject({
      code: 1,
      stderr: expect.stringContaining(`already holds the account ${dan}`) as string,
    });
    expect(existsSync(join(profiles, fresh))).toBe(false);
  });

  it('restores on a fresh profile with the password, then chats at once', async () => {
    const phone = `cat-new-phone`;
    const restored = await as(phone, `${password}\n`, 'backup', 'restore', cat, '--password-stdin');
    expect(restored).toMatchObject({ code: 0, stderr: '' });
    expect(restored.stdout).toMatch(new RegExp(`^restored ${cat} from backup version 2: 1 history entries`));

    const history = (await as(phone, '', 'history', dan, '--json')).stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, string>);
    expect(history).toMatchObject([{ from: cat, to: dan, text: 'before the backup' }]);

    // The lost phone is signed out; the new one talks to Dan, who answers.
    expect((await as(cat, '', 'send', dan, 'from the lost phone')).stderr).toMatch(/not registered/);
    expect(await as(phone, '', 'send', dan, 'I have a new phone')).toMatchObject({ code: 0 });
    const received = (await as(dan, '', 'receive', '--wait', '3')).stdout;
    expect(received).toContain(`*** the safety number with ${cat} changed`);
    expect(received).toContain(`${cat}: I have a new phone`);
    // The new phone has a new identity key: Dan sends again once he accepted it.
    expect(await as(dan, '', 'send', cat, 'welcome back')).toMatchObject({
      code: 1,
      stderr: expect.stringContaining(`the safety number with ${cat} changed`) as string,
    });
    expect(await as(dan, '', 'trust', cat)).toMatchObject({ code: 0 });
    expect(await as(dan, '', 'send', cat, 'welcome back')).toMatchObject({ code: 0 });
    expect((await as(phone, '', 'receive', '--wait', '3')).stdout).toContain(`${dan}: welcome back`);
  });
});
