import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Client, type ClientConfig } from 'pg';
import { clientTlsOptions } from '@sotto/platform/tls';
import { ManagedProcess, logTail } from './process';
import { freePort } from './ports';
import { isRoot, postgresBinDir, run, which } from './system';
import { silentLogger, type Logger, type RunningPostgres, type ServerTls, type StartOptions } from './types';

const READY_TIMEOUT_MS = 30_000;
const SUPERUSER = 'sotto';
const DATABASE = 'sotto';
const OS_USER = 'postgres';

interface OsUser {
  uid: number;
  gid: number;
}

function lookupUser(name: string): OsUser | undefined {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  if (line === undefined) return undefined;
  const fields = line.split(':');
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}

/** PostgreSQL refuses to run as root, so as root it runs as the `postgres` system user. */
async function ensureOsUser(logger: Logger): Promise<OsUser> {
  const existing = lookupUser(OS_USER);
  if (existing !== undefined) return existing;
  logger.info(`creating system user ${OS_USER} to run PostgreSQL (it refuses to run as root)`);
  // --user-group fails when a group of that name already exists (e.g. a half-removed install).
  const groupExists = readFileSync('/etc/group', 'utf8')
    .split('\n')
    .some((l) => l.startsWith(`${OS_USER}:`));
  const result = await run('useradd', [
    '--system',
    '--no-create-home',
    '--home-dir',
    '/var/lib/postgresql',
    '--shell',
    '/usr/sbin/nologin',
    ...(groupExists ? ['--gid', OS_USER] : ['--user-group']),
    OS_USER,
  ]);
  const created = lookupUser(OS_USER);
  if (created === undefined) {
    throw new Error(`could not create system user ${OS_USER}: ${result.output.trim()}`);
  }
  return created;
}

/** The `postgres` user must be able to reach dataDir through every parent (e.g. a 0700 mkdtemp dir). */
function makeParentsTraversable(dir: string, logger: Logger): void {
  let current = dirname(dir);
  for (;;) {
    const st = statSync(current);
    if ((st.mode & 0o001) === 0) {
      logger.warn(`adding o+x to ${current} so the ${OS_USER} user can reach the PostgreSQL data dir`);
      chmodSync(current, (st.mode & 0o7777) | 0o001);
    }
    const parent = dirname(current);
    if (parent === current) return;
    current = parent;
  }
}

function chownRecursive(path: string, user: OsUser): void {
  // Only needed when a data dir created by another user is reused as root; not a hot path.
  chownSync(path, user.uid, user.gid);
  if (!statSync(path).isDirectory()) return;
  for (const entry of readdirSync(path)) chownRecursive(join(path, entry), user);
}

/**
 * How the start-up probe and ensureDatabase connect: under TLS as any client
 * must, verifying the server and presenting a certificate of the CA (the
 * server's own, which allows client authentication).
 */
function adminConnection(port: number, database: string, tls: ServerTls | undefined): ClientConfig {
  return {
    host: '127.0.0.1',
    port,
    user: SUPERUSER,
    database,
    ...(tls ? { ssl: clientTlsOptions({ ca: tls.ca, ...tls.identity }) } : {}),
  };
}

/**
 * Under TLS: only TLS connections over loopback, each with a client
 * certificate from the CA (the user name is still the client's to choose; the
 * data dir is local and disposable). No line admits plaintext, so PostgreSQL
 * refuses it with "no pg_hba.conf entry … no encryption".
 */
const TLS_HBA = `# Written by Sotto's local infrastructure on every start.
hostssl all all 127.0.0.1/32 trust clientcert=verify-ca
hostssl all all ::1/128 trust clientcert=verify-ca
`;

/**
 * The server's certificate, key and CA, copied where the server can read
 * them: PostgreSQL runs as another user than root, and refuses a key that
 * others can read or that is not its own.
 */
function installServerTls(dir: string, tls: ServerTls, owner: OsUser | undefined): Record<string, string> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files = {
    ssl_cert_file: join(dir, 'server.crt'),
    ssl_key_file: join(dir, 'server.key'),
    ssl_ca_file: join(dir, 'ca.crt'),
    hba_file: join(dir, 'pg_hba.conf'),
  };
  copyFileSync(tls.identity.cert, files.ssl_cert_file);
  copyFileSync(tls.identity.key, files.ssl_key_file);
  copyFileSync(tls.ca, files.ssl_ca_file);
  writeFileSync(files.hba_file, TLS_HBA);
  for (const file of [dir, ...Object.values(files)]) {
    if (owner !== undefined) chownSync(file, owner.uid, owner.gid);
    chmodSync(file, file === dir ? 0o700 : 0o600);
  }
  return files;
}

async function probe(port: number, database: string, tls: ServerTls | undefined): Promise<void> {
  const client = new Client({
    ...adminConnection(port, database, tls),
    connectionTimeoutMillis: 2000,
    query_timeout: 5000,
  });
  // A failed connect can emit 'error' later as well; without a listener that would crash the process.
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('select 1');
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function ensureDatabase(port: number, tls: ServerTls | undefined): Promise<void> {
  const client = new Client(adminConnection(port, 'postgres', tls));
  client.on('error', () => undefined);
  await client.connect();
  try {
    const found = await client.query('select 1 from pg_database where datname = $1', [DATABASE]);
    if (found.rowCount === 0) await client.query(`create database ${DATABASE}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function startPostgres(opts: StartOptions): Promise<RunningPostgres> {
  const logger = opts.logger ?? silentLogger;
  const dataDir = resolve(opts.dataDir);
  const pgdata = join(dataDir, 'pgdata');
  const logFile = join(dataDir, 'postgres.log');
  mkdirSync(dataDir, { recursive: true });

  const versionFile = join(pgdata, 'PG_VERSION');
  const initialized = existsSync(versionFile);
  const binDir = postgresBinDir(initialized ? readFileSync(versionFile, 'utf8').trim() : undefined);
  if (binDir === undefined) {
    throw new Error(
      'PostgreSQL server binaries (initdb, postgres) not found on PATH or in /usr/lib/postgresql/*/bin; ' +
        'install the Debian package postgresql',
    );
  }

  // As root, run everything as the postgres user; setpriv execs in place so the pid we hold is
  // the postmaster itself and signals reach it directly.
  let wrap = (bin: string, args: string[]): [string, string[]] => [bin, args];
  let osUser: OsUser | undefined;
  if (isRoot()) {
    const user = await ensureOsUser(logger);
    osUser = user;
    const setpriv = which('setpriv') ?? '/usr/bin/setpriv';
    wrap = (bin, args) => [
      setpriv,
      [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--', bin, ...args],
    ];
    chownSync(dataDir, user.uid, user.gid);
    if (existsSync(pgdata) && statSync(pgdata).uid !== user.uid) chownRecursive(pgdata, user);
    makeParentsTraversable(dataDir, logger);
  }

  if (!initialized) {
    // A data dir without PG_VERSION is a half-finished initdb; initdb refuses non-empty dirs.
    rmSync(pgdata, { recursive: true, force: true });
    logger.info(`postgres: initdb in ${pgdata}`);
    const [cmd, args] = wrap(join(binDir, 'initdb'), [
      '-D',
      pgdata,
      '-U',
      SUPERUSER,
      '--auth=trust',
      '-E',
      'UTF8',
      // The C locale always exists; the caller's LANG may name one that is not generated.
      '--locale=C',
    ]);
    const result = await run(cmd, args, { cwd: dataDir, env: { ...process.env, LC_ALL: 'C', LANG: 'C' } });
    if (result.code !== 0) {
      rmSync(pgdata, { recursive: true, force: true });
      throw new Error(`postgres: initdb failed (exit ${String(result.code)}):\n${result.output.trim()}`);
    }
  }

  const port = opts.port ?? (await freePort());
  const started = Date.now();
  const { tls } = opts;
  // Rewritten on every start, so a data dir can be reused with or without TLS, and with new certificates.
  const tlsSettings =
    tls === undefined
      ? []
      : Object.entries({
          ssl: 'on',
          ssl_min_protocol_version: 'TLSv1.3',
          ...installServerTls(join(dataDir, 'tls'), tls, osUser),
        }).flatMap(([name, value]) => ['-c', `${name}=${value}`]);
  const [cmd, args] = wrap(join(binDir, 'postgres'), [
    '-D',
    pgdata,
    '-p',
    String(port),
    '-c',
    'listen_addresses=127.0.0.1',
    // TCP only: socket paths have a 107-byte limit that deep temp dirs can exceed.
    '-c',
    'unix_socket_directories=',
    '-c',
    'logging_collector=off',
    ...tlsSettings,
  ]);
  const child = await ManagedProcess.spawn({
    name: 'postgres',
    command: cmd,
    args,
    cwd: dataDir,
    env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
    outputFile: logFile,
    logFiles: [logFile],
    // SIGINT is PostgreSQL's "fast" shutdown: disconnect clients, checkpoint, exit.
    stopSignal: 'SIGINT',
    pidFile: join(dataDir, 'postgres.pid'),
    marker: pgdata,
    logger,
  });
  try {
    await child.waitReady(() => probe(port, 'postgres', tls), READY_TIMEOUT_MS);
    await ensureDatabase(port, tls);
  } catch (err) {
    await child.stop();
    if (err instanceof Error && !err.message.includes('last lines of')) {
      throw new Error(`postgres: ${err.message}\n${logTail([logFile])}`);
    }
    throw err;
  }
  logger.info(
    `postgres ready on 127.0.0.1:${port}${tls ? ' (TLS)' : ''} in ${Date.now() - started} ms (pid ${child.pid})`,
  );
  const url = `postgres://${SUPERUSER}@127.0.0.1:${port}/${DATABASE}`;
  return {
    name: 'postgres',
    pid: child.pid,
    url: tls ? `${url}?sslmode=verify-full` : url,
    ...(tls ? { ca: tls.ca } : {}),
    stop: () => child.stop(),
  };
}
