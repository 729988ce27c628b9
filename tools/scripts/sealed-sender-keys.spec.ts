import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PrivateKey, PublicKey, ServerCertificate } from '@signalapp/libsignal-client';
import { repoRoot } from '@sotto/local-infra';

const root = repoRoot();

/** `npm run sealed-sender:keys -- <args>`, as an operator runs it. */
async function keys(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ['-r', '@swc-node/register', join('tools', 'scripts', 'sealed-sender-keys.ts'), ...args],
      { cwd: root, env: { ...process.env, SWC_NODE_PROJECT: join(root, 'tsconfig.json') } },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** The NAME=value lines of the output. */
function printed(stdout: string): Record<string, string> {
  return Object.fromEntries(
    stdout
      .split('\n')
      .filter((line) => /^[A-Z_]+=/.test(line))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

const bytes = (base64: string): Uint8Array<ArrayBuffer> =>
  new Uint8Array(Buffer.from(base64.trim(), 'base64'));

/** Whether `certificate` is a server certificate for `key`'s public key, signed by `trustRoot`. */
function chains(certificate: string, key: string, trustRoot: string): boolean {
  const server = ServerCertificate.deserialize(bytes(certificate));
  return (
    PublicKey.deserialize(bytes(trustRoot)).verify(server.certificateData(), server.signature()) &&
    PrivateKey.deserialize(bytes(key)).getPublicKey().equals(server.key())
  );
}

describe('npm run sealed-sender:keys', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sotto-sealed-sender-keys-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("prints a trust root, its private key once, and the gateway's certificate and key under it", async () => {
    const run = await keys('--key-id', '9');
    expect(run.code).toBe(0);
    const values = printed(run.stdout);
    expect(Object.keys(values).sort()).toEqual([
      'SENDER_CERTIFICATE_SERVER_CERTIFICATE',
      'SENDER_CERTIFICATE_SERVER_KEY',
      'SENDER_CERTIFICATE_TRUST_ROOT_PRIVATE_KEY',
      'SOTTO_SENDER_CERTIFICATE_TRUST_ROOT',
    ]);
    const certificate = values['SENDER_CERTIFICATE_SERVER_CERTIFICATE'];
    expect(ServerCertificate.deserialize(bytes(certificate)).keyId()).toBe(9);
    expect(
      chains(
        certificate,
        values['SENDER_CERTIFICATE_SERVER_KEY'],
        values['SOTTO_SENDER_CERTIFICATE_TRUST_ROOT'],
      ),
    ).toBe(true);
    expect(
      PrivateKey.deserialize(bytes(values['SENDER_CERTIFICATE_TRUST_ROOT_PRIVATE_KEY']))
        .getPublicKey()
        .equals(PublicKey.deserialize(bytes(values['SOTTO_SENDER_CERTIFICATE_TRUST_ROOT']))),
    ).toBe(true);
    // A new root each run.
    expect(printed((await keys()).stdout)['SOTTO_SENDER_CERTIFICATE_TRUST_ROOT']).not.toBe(
      values['SOTTO_SENDER_CERTIFICATE_TRUST_ROOT'],
    );
  });

  it("writes the gateway's secrets to owner-only files, never the root's private key, and never over a file", async () => {
    const out = join(dir, 'out');
    const run = await keys('--out', out);
    expect(run.code).toBe(0);
    expect(readdirSync(out).sort()).toEqual([
      'SENDER_CERTIFICATE_SERVER_CERTIFICATE',
      'SENDER_CERTIFICATE_SERVER_KEY',
      'trust-root.pub',
    ]);
    const read = (name: string): string => readFileSync(join(out, name), 'utf8');
    for (const secret of ['SENDER_CERTIFICATE_SERVER_CERTIFICATE', 'SENDER_CERTIFICATE_SERVER_KEY']) {
      expect(statSync(join(out, secret)).mode & 0o077).toBe(0);
    }
    expect(
      chains(
        read('SENDER_CERTIFICATE_SERVER_CERTIFICATE'),
        read('SENDER_CERTIFICATE_SERVER_KEY'),
        read('trust-root.pub'),
      ),
    ).toBe(true);
    const rootPrivate = printed(run.stdout)['SENDER_CERTIFICATE_TRUST_ROOT_PRIVATE_KEY'];
    expect(rootPrivate).toBeDefined();
    for (const name of readdirSync(out)) expect(read(name)).not.toContain(rootPrivate);

    const before = read('SENDER_CERTIFICATE_SERVER_KEY');
    const again = await keys('--out', out);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('will not overwrite');
    expect(read('SENDER_CERTIFICATE_SERVER_KEY')).toBe(before);
  });

  it('certifies a new server key under an existing root, which it does not print again', async () => {
    const first = printed((await keys()).stdout);
    const rootFile = join(dir, 'root.key');
    writeFileSync(rootFile, `${first['SENDER_CERTIFICATE_TRUST_ROOT_PRIVATE_KEY']}\n`, { mode: 0o600 });
    const rotated = printed((await keys('--trust-root-key', rootFile, '--key-id', '2')).stdout);
    expect(rotated['SOTTO_SENDER_CERTIFICATE_TRUST_ROOT']).toBe(first['SOTTO_SENDER_CERTIFICATE_TRUST_ROOT']);
    expect(rotated['SENDER_CERTIFICATE_TRUST_ROOT_PRIVATE_KEY']).toBeUndefined();
    expect(rotated['SENDER_CERTIFICATE_SERVER_KEY']).not.toBe(first['SENDER_CERTIFICATE_SERVER_KEY']);
    expect(
      chains(
        rotated['SENDER_CERTIFICATE_SERVER_CERTIFICATE'],
        rotated['SENDER_CERTIFICATE_SERVER_KEY'],
        first['SOTTO_SENDER_CERTIFICATE_TRUST_ROOT'],
      ),
    ).toBe(true);
  });

  it('refuses a bad key id or trust root key, printing no keys', async () => {
    const notAKey = join(dir, 'not-a-key');
    writeFileSync(notAKey, 'hello\n');
    for (const args of [
      ['--key-id', '-1'],
      ['--key-id', 'one'],
      ['--trust-root-key', notAKey],
      ['--trust-root-key', join(dir, 'missing')],
    ]) {
      const run = await keys(...args);
      expect({ args, code: run.code, printed: printed(run.stdout) }).toEqual({ args, code: 1, printed: {} });
      expect(run.stderr).not.toBe('');
    }
  });
});
