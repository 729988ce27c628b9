import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Client } from 'pg';
import { ManagedProcess, logTail } from './process';
import { freePort } from './ports';
import { isRoot, postgresBinDir, run, which } from './system';
import { silentLogger, type Logger, type RunningPostgres, type StartOptions } from './types';

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

async function probe(port: number, database: string): Promise<void> {
  const client = new Client({
    host: '127.0.0.1',
    port,
    user: SUPERUSER,
    database,
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

async function ensureDatabase(port: number): Promise<void> {
  const client = new Client({ host: '127.0.0.1', port, user: SUPERUSER, database: 'postgres' });
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
  if (isRoot()) {
    const user = await ensureOsUser(logger);
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
    await child.waitReady(() => probe(port, 'postgres'), READY_TIMEOUT_MS);
    await ensureDatabase(port);
  } catch (err) {
    await child.stop();
    if (err instanceof Error && !err.message.includes('last lines of')) {
      throw new Error(`postgres: ${err.message}\n${logTail([logFile])}`);
    }
    throw err;
  }
  logger.info(`postgres ready on 127.0.0.1:${port} in ${Date.now() - started} ms (pid ${child.pid})`);
  return {
    name: 'postgres',
    pid: child.pid,
    url: `postgres://${SUPERUSER}@127.0.0.1:${port}/${DATABASE}`,
    stop: () => child.stop(),
  };
}
