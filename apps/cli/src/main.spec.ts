import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { randomUUID } from 'node:crypto';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import {
  foreignPki,
  freePort,
  repoRoot,
  startTestPlatform,
  startTestService,
  testTls,
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

describe("the gateway's certificate", () => {
  let gateway: TestService;
  let foreignCa: string;
  const profiles = mkdtempSync(join(tmpdir(), 'sotto-cli-tls-'));
  /** The environment of a person who has not set SOTTO_CA. */
  const withoutCa = Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== 'SOTTO_CA'));
  const runIn = async (cwd: string, env: NodeJS.ProcessEnv, ...args: string[]) => {
    try {
      const { stdout, stderr } = await run(process.execPath, [bin, ...args], { cwd, env });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  };

  beforeAll(async () => {
    [gateway, foreignCa] = await Promise.all([
      startTestService('gateway'),
      foreignPki().then((pki) => pki.ca),
    ]);
  });

  afterAll(async () => {
    await gateway?.stop();
    rmSync(profiles, { recursive: true, force: true });
  });

  it('refuses a gateway whose certificate another CA issued, in one line', async () => {
    const env = { ...withoutCa, SOTTO_CA: foreignCa };
    const status = await runIn(repoRoot(), env, '--server', gateway.grpc, 'status');
    expect(status).toEqual({
      code: 1,
      stdout: `${gateway.grpc}: certificate not trusted (unable to verify the first certificate)\n`,
      stderr: '',
    });
    const register = await runIn(
      repoRoot(),
      env,
      '--server',
      gateway.grpc,
      '--profile',
      join(profiles, 'm'),
      'register',
      'mallory_tls',
    );
    expect(register).toEqual({
      code: 1,
      stdout: '',
      stderr: `sotto: server ${gateway.grpc}: certificate not trusted (unable to verify the first certificate); give the CA that issued it with --ca FILE or SOTTO_CA\n`,
    });
  });

  it('takes the CA from --ca over SOTTO_CA', async () => {
    const env = { ...withoutCa, SOTTO_CA: foreignCa };
    expect(
      await runIn(repoRoot(), env, '--ca', testTls().ca, '--server', gateway.grpc, 'status'),
    ).toMatchObject({
      code: 0,
      stdout: `${gateway.grpc}: serving\n`,
    });
  });

  it('finds the CA in the .sotto/stack.json of the checkout it runs in, for the gateway it names only', async () => {
    const checkout = mkdtempSync(join(tmpdir(), 'sotto-checkout-'));
    try {
      mkdirSync(join(checkout, '.sotto'));
      mkdirSync(join(checkout, 'apps'));
      writeFileSync(
        join(checkout, '.sotto', 'stack.json'),
        JSON.stringify({ gateway: gateway.grpc, tls: { ca: testTls().ca } }),
      );
      expect(await runIn(join(checkout, 'apps'), withoutCa, '--server', gateway.grpc, 'status')).toEqual({
        code: 0,
        stdout: `${gateway.grpc}: serving\n`,
        stderr: '',
      });
      // The same gateway under another name is not the one stack.json names: only the system's roots apply.
      const other = `localhost:${gateway.grpc.split(':')[1]}`;
      const refused = await runIn(join(checkout, 'apps'), withoutCa, '--server', other, 'status');
      expect(refused.code).toBe(1);
      expect(refused.stdout).toMatch(new RegExp(`^${other}: certificate not trusted \\(.+\\)\n$`));
    } finally {
      rmSync(checkout, { recursive: true, force: true });
    }
  });

  it('never speaks plaintext, even to a server that only offers it', async () => {
    // A downgrade: something on the gateway's path answers gRPC without TLS.
    const server = new Server();
    new HealthImplementation({ '': 'SERVING' }).addToServer(server);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    try {
      expect(await sotto('--server', `127.0.0.1:${port}`, 'status')).toEqual({
        code: 1,
        stdout: `127.0.0.1:${port}: no TLS on this port (the server speaks plaintext or another protocol)\n`,
        stderr: '',
      });
    } finally {
      server.forceShutdown();
    }
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
        sealed: false,
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

  it('says how long to wait when a rate limit refuses it, and sends nothing more', async () => {
    // A gateway of the same platform with its limits on: two sends an hour from a device. Each
    // `sotto send` makes one: the account's signed device list names no other device to copy it to.
    const services = platform.services;
    const limited = await startTestService('gateway', {
      PREKEY_DIRECTORY_ADDR: services['prekey-directory'].grpc,
      MESSAGE_RELAY_ADDR: services['message-relay'].grpc,
      PRESENCE_ADDR: services.presence.grpc,
      BACKUP_STORE_ADDR: services['backup-store'].grpc,
      KEY_VAULT_ADDR: services['key-vault'].grpc,
      SOTTO_RATE_LIMITS: 'on',
      RATE_LIMIT_SEND_PER_DEVICE: '2/1h',
    });
    try {
      const via = (...args: string[]) =>
        sotto('--server', limited.grpc, '--profile', join(profiles, a), ...args);
      for (const text of ['one', 'two']) {
        expect(await via('send', b, text)).toEqual({ code: 0, stdout: `sent to ${b}\n`, stderr: '' });
      }
      const refused = await via('send', b, 'three');
      expect(refused).toEqual({
        code: 1,
        stdout: '',
        stderr: expect.stringMatching(
          /^sotto: too many messages sent from this device; try again in (179\d|1800) s\n$/,
        ) as string,
      });
      const received = await as(b, 'receive', '--wait', '3', '--json');
      const texts = received.stdout
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { text: string }).text);
      expect(texts.filter((text) => ['one', 'two', 'three'].includes(text))).toEqual(['one', 'two']);
    } finally {
      await limited.stop();
    }
  });
});
