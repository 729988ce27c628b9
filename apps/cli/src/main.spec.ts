import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { randomUUID } from 'node:crypto';
import {
  freePort,
  repoRoot,
  startTestPlatform,
  startTestService,
  type Platform,
  type TestService,
} from '@sotto/testing';

const run = promisify(execFile);
const bin = join(repoRoot(), 'apps/cli/bin/sotto.js');

async function sotto(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [bin, ...args], { cwd: repoRoot() });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe('sotto status', () => {
  let gateway: TestService;

  beforeAll(async () => {
    gateway = await startTestService('gateway');
  });

  afterAll(async () => {
    await gateway?.stop();
  });

  it('reports a running gateway as serving', async () => {
    expect(await sotto('--server', gateway.grpc, 'status')).toEqual({
      code: 0,
      stdout: `${gateway.grpc}: serving\n`,
      stderr: '',
    });
  });

  it('prints one JSON object with --json', async () => {
    const { code, stdout } = await sotto('status', '--json', '--server', gateway.grpc);
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual({ server: gateway.grpc, serving: true, detail: 'SERVING' });
  });

  it('takes the server from SOTTO_SERVER', async () => {
    const { stdout } = await run(process.execPath, [bin, 'status'], {
      cwd: repoRoot(),
      env: { ...process.env, SOTTO_SERVER: gateway.grpc },
    });
    expect(stdout).toBe(`${gateway.grpc}: serving\n`);
  });

  it('says a server is unreachable and exits non-zero', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    expect(await sotto('status', '--server', address)).toEqual({
      code: 1,
      stdout: `${address}: unreachable (connect ECONNREFUSED ${address})\n`,
      stderr: '',
    });
  });

  it('refuses a malformed server address with one line', async () => {
    expect(await sotto('status', '--server', 'localhost')).toEqual({
      code: 1,
      stdout: '',
      stderr: 'sotto: server address "localhost" is not host:port (for example 127.0.0.1:7400)\n',
    });
  });

  it('explains an unknown command', async () => {
    const { code, stderr } = await sotto('teleport');
    expect(code).not.toBe(0);
    expect(stderr).toContain("unknown command 'teleport'");
  });
});

describe('a conversation with the sotto command', () => {
  let platform: Platform;
  const profiles = mkdtempSync(join(tmpdir(), 'sotto-cli-'));
  const a = `ann_${randomUUID().replace(/-/g, '').slice(0, 8)}`;
  const b = `ben_${randomUUID().replace(/-/g, '').slice(0, 8)}`;
  const as = (who: string, ...args: string[]) =>
    sotto('--server', platform.gateway, '--profile', join(profiles, who), ...args);

  beforeAll(async () => {
    platform = await startTestPlatform();
  });

  afterAll(async () => {
    await platform?.stop();
    rmSync(profiles, { recursive: true, force: true });
  });

  it('registers two people who then talk, with history and matching safety numbers', async () => {
    const registration = await as(a, 'register', a);
    expect(registration).toMatchObject({
      code: 0,
      stdout: expect.stringContaining(`registered ${a}`) as string,
    });
    expect((await as(b, 'register', b)).code).toBe(0);

    expect(await as(a, 'send', b, 'hello from the terminal')).toEqual({
      code: 0,
      stdout: `sent to ${b}\n`,
      stderr: '',
    });
    const received = await as(b, 'receive', '--wait', '3', '--json');
    expect(received.code).toBe(0);
    const lines = received.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, string>);
    expect(lines).toEqual([
      {
        from: a,
        text: 'hello from the terminal',
        sentAt: expect.any(String) as string,
        guid: expect.any(String) as string,
      },
    ]);
    expect(await as(b, 'receive')).toEqual({ code: 0, stdout: '', stderr: '' });

    const history = await as(b, 'history', a, '--json');
    expect(JSON.parse(history.stdout.trim())).toMatchObject({
      from: a,
      to: b,
      text: 'hello from the terminal',
    });

    const numberA = (await as(a, 'safety-number', b)).stdout.trim();
    expect(numberA).toMatch(/^\d{60}$/);
    expect((await as(b, 'safety-number', a)).stdout.trim()).toBe(numberA);
  });

  it('says in one line when the user is unknown, the profile is not registered, or the server is unreachable', async () => {
    expect(await as(a, 'send', 'nobody_here', 'hi')).toEqual({
      code: 1,
      stdout: '',
      stderr: 'sotto: unknown user nobody_here\n',
    });
    const empty = await as('never-registered', 'receive');
    expect(empty.code).toBe(1);
    expect(empty.stderr).toMatch(
      /^sotto: not registered: .* holds no account \(run `sotto register <username>`\)\n$/,
    );
    const port = await freePort();
    const offline = await sotto(
      '--server',
      `127.0.0.1:${port}`,
      '--profile',
      join(profiles, a),
      'send',
      b,
      'hi',
    );
    expect(offline).toEqual({
      code: 1,
      stdout: '',
      stderr: `sotto: server 127.0.0.1:${port} is unreachable\n`,
    });
  });

  it('rotates the device secret: the profile keeps working, a copy of the old one does not', async () => {
    // A thief copied the profile's account.json, with the device secret in it.
    const stolen = join(profiles, `${b}-stolen`);
    cpSync(join(profiles, b), stolen, { recursive: true });
    const before = JSON.parse(readFileSync(join(profiles, b, 'account.json'), 'utf8')) as {
      deviceSecret: string;
    };
    expect(
      (await sotto('--server', platform.gateway, '--profile', stolen, 'send', a, 'from the thief')).code,
    ).toBe(0);

    expect(await as(b, 'rotate-secret')).toEqual({
      code: 0,
      stdout: `rotated the device secret of ${b}; the old one no longer works\n`,
      stderr: '',
    });
    const after = JSON.parse(readFileSync(join(profiles, b, 'account.json'), 'utf8')) as {
      deviceSecret: string;
    };
    expect(after.deviceSecret).not.toBe(before.deviceSecret);
    expect(await as(b, 'send', a, 'still me')).toMatchObject({ code: 0 });

    const thief = await sotto(
      '--server',
      platform.gateway,
      '--profile',
      stolen,
      'send',
      a,
      'from the thief again',
    );
    expect(thief.code).toBe(1);
    expect(thief.stderr).toBe(
      `sotto: this device is not registered with ${platform.gateway} (authorization: unknown device or wrong secret)\n`,
    );
    expect((await sotto('--server', platform.gateway, '--profile', stolen, 'rotate-secret')).code).toBe(1);
  });
});
