import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, repoRoot, startTestService, type TestService } from '@sotto/testing';

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
