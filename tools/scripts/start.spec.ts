import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { checkHealth, mutualTlsCredentials, type ServiceIdentity } from '@sotto/contracts';
import { freePort, repoRoot } from '@sotto/local-infra';

interface Stack {
  gateway: string;
  kafkaBrokers: string[];
  redisUrl: string;
  databaseUrl: string;
  storageTls: string[];
  backupBlobDir: string;
  tls: { ca: string; clientCert: string; clientKey: string };
  senderCertificateTrustRoot: string;
  services: Record<ServiceIdentity, { grpc: string; metrics: string }>;
}

interface Run {
  child: ChildProcess;
  output: () => string;
  /** Exit code or signal, once npm and every process holding its output (start.ts) are gone. */
  exited: Promise<number | string>;
}

const root = repoRoot();

/** The test run's infrastructure settings: `npm start` runs without them, so it starts its own. */
const INFRA_VARIABLES = [
  'KAFKA_BROKERS',
  'REDIS_URL',
  'REDIS_CLUSTER_NODES',
  'REDIS_CLUSTER_TLS',
  'SOTTO_REDIS',
  'DATABASE_URL',
  'SOTTO_TEST_INFRA',
  'SOTTO_CA',
];
const STORAGE_TLS_VARIABLES = /^(KAFKA|REDIS|DATABASE)_TLS_(CA|CERT|KEY)$|^KAFKA_SECURITY_PROTOCOL$/;

/** Runs the `sotto` CLI as a person would, without the test run's SOTTO_CA. */
async function sotto(
  env: Record<string, string>,
  ...args: string[]
): Promise<{ code: number; stdout: string }> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== 'SOTTO_CA'));
  try {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [join(root, 'apps/cli/bin/sotto.js'), ...args],
      {
        cwd: tmpdir(),
        env: { ...inherited, ...env },
      },
    );
    return { code: 0, stdout };
  } catch (error) {
    const failed = error as { code: number; stdout: string };
    return { code: failed.code, stdout: failed.stdout };
  }
}

/** Runs `npm start` in a process group of its own, as a terminal would. */
function npmStart(env: Record<string, string>): Run {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(
      ([name]) => !INFRA_VARIABLES.includes(name) && !STORAGE_TLS_VARIABLES.test(name),
    ),
  );
  const child = spawn('npm', ['start', '--silent'], {
    cwd: root,
    env: { ...inherited, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.once('close', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  return { child, output: () => output, exited };
}

async function waitFor(run: Run, text: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let done = false;
  void run.exited.then(() => (done = true));
  while (!run.output().includes(text)) {
    if (done) throw new Error(`npm start exited before printing "${text}":\n${run.output()}`);
    if (Date.now() > deadline) throw new Error(`no "${text}" after ${timeoutMs} ms:\n${run.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function killGroup(run: Run): void {
  try {
    process.kill(-run.child.pid!, 'SIGKILL');
  } catch {
    // already gone
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm start', () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'sotto-start-'));
  let gateway: string;

  beforeAll(async () => {
    gateway = `127.0.0.1:${await freePort()}`;
  });

  afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

  it('runs the platform, refuses a second run, and Ctrl-C leaves no process behind', async () => {
    const env = { SOTTO_STATE_DIR: stateDir, SOTTO_GATEWAY_ADDR: gateway };
    const run = npmStart(env);
    try {
      await waitFor(run, `Sotto is running. Gateway: ${gateway}`, 180_000);

      const stack = JSON.parse(readFileSync(join(stateDir, 'stack.json'), 'utf8')) as Stack;
      expect(Object.keys(stack).sort()).toEqual([
        'backupBlobDir',
        'databaseUrl',
        'gateway',
        'kafkaBrokers',
        'redisUrl',
        'senderCertificateTrustRoot',
        'services',
        'storageTls',
        'tls',
      ]);
      expect(stack.gateway).toBe(gateway);
      // The sealed-sender trust root clients pin: a libsignal public key (type byte and 32 bytes).
      expect(Buffer.from(stack.senderCertificateTrustRoot, 'base64')).toHaveLength(33);
      expect(stack.tls).toEqual({
        ca: join(stateDir, 'tls', 'ca.crt'),
        clientCert: join(stateDir, 'tls', 'operator.crt'),
        clientKey: join(stateDir, 'tls', 'operator.key'),
      });
      expect(stack.backupBlobDir).toBe(join(stateDir, 'data', 'backups'));
      expect(existsSync(stack.backupBlobDir)).toBe(true);
      expect(Object.keys(stack.services).sort()).toEqual(
        ['backup-store', 'gateway', 'key-vault', 'message-relay', 'prekey-directory', 'presence'].sort(),
      );
      // The operator's certificate in stack.json asks every service for its health, over mutual TLS.
      const operator = { ca: stack.tls.ca, cert: stack.tls.clientCert, key: stack.tls.clientKey };
      for (const [name, addresses] of Object.entries(stack.services) as [
        ServiceIdentity,
        { grpc: string; metrics: string },
      ][]) {
        expect([name, await checkHealth(addresses.grpc, mutualTlsCredentials(operator, name))]).toEqual([
          name,
          'SERVING',
        ]);
        expect([name, (await fetch(`http://${addresses.metrics}/readyz`)).status]).toEqual([name, 200]);
      }

      // The CLI verifies the gateway with the CA that stack.json names for it, and with no other.
      expect(await sotto({ SOTTO_STATE_DIR: stateDir }, '--server', gateway, 'status')).toEqual({
        code: 0,
        stdout: `${gateway}: serving\n`,
      });
      const elsewhere = await sotto({}, '--server', gateway, 'status');
      expect(elsewhere.code).toBe(1);
      expect(elsewhere.stdout).toMatch(new RegExp(`^${gateway}: certificate not trusted \\(.+\\)\n$`));

      // Kafka, Redis and PostgreSQL serve mutual TLS too; stack.json's database URL carries the
      // operator's certificate, so that pg (and psql) take it whole.
      expect(stack.storageTls).toEqual(['kafka', 'redis', 'postgres']);
      expect(stack.redisUrl).toMatch(/^rediss:\/\/127\.0\.0\.1:\d+$/);
      expect(new URL(stack.databaseUrl).searchParams.get('sslcert')).toBe(stack.tls.clientCert);

      // Keep a row, to find it again after a restart.
      const db = new Client({ connectionString: stack.databaseUrl });
      await db.connect();
      const { rows: ssl } = await db.query<{ ssl: boolean }>(
        'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
      );
      expect(ssl).toEqual([{ ssl: true }]);
      await db.query('CREATE TABLE persisted (note text)');
      await db.query("INSERT INTO persisted VALUES ('still here')");
      await db.end();

      const second = npmStart(env);
      expect(await second.exited).not.toBe(0);
      expect(second.output()).toContain('Sotto is already running');

      const lock = JSON.parse(readFileSync(join(stateDir, 'run.lock'), 'utf8')) as { children: number[] };
      expect(lock.children).toHaveLength(9); // Kafka, Redis, PostgreSQL and six services
      expect(lock.children.every(isAlive)).toBe(true);

      // What a terminal's Ctrl-C does: SIGINT to the whole foreground process group.
      process.kill(-run.child.pid!, 'SIGINT');
      expect([0, 'SIGINT']).toContain(await run.exited);
      expect(run.output()).toContain('stopped');
      expect(lock.children.filter(isAlive)).toEqual([]);
      expect(existsSync(join(stateDir, 'stack.json'))).toBe(false);
      expect(existsSync(join(stateDir, 'run.lock'))).toBe(false);
    } finally {
      killGroup(run);
    }
  });

  it('refuses REDIS_URL and REDIS_CLUSTER_NODES together, naming both, before starting anything', async () => {
    const both = npmStart({
      SOTTO_STATE_DIR: stateDir,
      SOTTO_GATEWAY_ADDR: gateway,
      REDIS_URL: 'redis://cache.internal:6379',
      REDIS_CLUSTER_NODES: 'redis-0.internal:6379,redis-1.internal:6379',
    });
    expect(await both.exited).toBe(78);
    expect(both.output()).toContain(
      'REDIS_CLUSTER_NODES: is set with REDIS_URL: set REDIS_URL for one Redis server or REDIS_CLUSTER_NODES for a Redis Cluster, not both',
    );
  });

  it('refuses TLS settings for servers of your own it would not use, before starting anything', async () => {
    const ca = join(stateDir, 'tls', 'ca.crt');
    const without = npmStart({ SOTTO_STATE_DIR: stateDir, SOTTO_GATEWAY_ADDR: gateway, REDIS_TLS_CA: ca });
    expect(await without.exited).toBe(78);
    expect(without.output()).toContain(
      'REDIS_TLS_CA: is for a server of your own, named by REDIS_URL or REDIS_CLUSTER_NODES; the local one uses the certificates in .sotto/tls',
    );
    const plaintext = npmStart({
      SOTTO_STATE_DIR: stateDir,
      SOTTO_GATEWAY_ADDR: gateway,
      DATABASE_URL: 'postgres://sotto@db.internal:5432/sotto?sslmode=require',
      KAFKA_BROKERS: 'kafka.internal:9093',
      KAFKA_TLS_CA: ca,
    });
    expect(await plaintext.exited).toBe(78);
    expect(plaintext.output()).toContain(
      'KAFKA_TLS_CA: is read only over TLS: set KAFKA_SECURITY_PROTOCOL=SSL',
    );
    expect(plaintext.output()).toContain(
      "DATABASE_URL: sslmode=require does not check that the server's certificate names its host: use sslmode=verify-full",
    );
  });

  it('keeps its data and its CA across restarts; with SOTTO_RATE_LIMITS=off, it and each limiting service say so', async () => {
    const ca = readFileSync(join(stateDir, 'tls', 'ca.crt'), 'utf8');
    const gatewayCert = readFileSync(join(stateDir, 'tls', 'gateway.crt'), 'utf8');
    const logOf = (service: string): string => readFileSync(join(stateDir, 'logs', `${service}.log`), 'utf8');
    // The first run had its limits on, as npm start does by default.
    expect(logOf('gateway')).not.toContain('SOTTO_RATE_LIMITS=off');
    const run = npmStart({
      SOTTO_STATE_DIR: stateDir,
      SOTTO_GATEWAY_ADDR: gateway,
      SOTTO_RATE_LIMITS: 'off',
    });
    try {
      await waitFor(run, 'Press Ctrl-C to stop.', 180_000);
      expect(run.output()).toContain(
        'WARNING: SOTTO_RATE_LIMITS=off: every rate limit is off. For load tests only.',
      );
      for (const service of ['gateway', 'prekey-directory', 'key-vault']) {
        expect([service, logOf(service)]).toEqual([
          service,
          expect.stringContaining('SOTTO_RATE_LIMITS=off: every rate limit of this service is off'),
        ]);
      }
      expect(readFileSync(join(stateDir, 'tls', 'ca.crt'), 'utf8')).toBe(ca);
      expect(readFileSync(join(stateDir, 'tls', 'gateway.crt'), 'utf8')).toBe(gatewayCert);
      const stack = JSON.parse(readFileSync(join(stateDir, 'stack.json'), 'utf8')) as Stack;
      const db = new Client({ connectionString: stack.databaseUrl });
      await db.connect();
      const { rows } = await db.query<{ note: string }>('SELECT note FROM persisted');
      await db.end();
      expect(rows).toEqual([{ note: 'still here' }]);
      process.kill(-run.child.pid!, 'SIGINT');
      expect([0, 'SIGINT']).toContain(await run.exited);
    } finally {
      killGroup(run);
    }
  });
});
