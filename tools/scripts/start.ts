/**
 * `npm start`: the whole platform on one machine. Makes (or keeps) a local CA
 * and the certificates of the services and of the local servers in
 * .sotto/tls; starts Kafka, Redis and PostgreSQL serving mutual TLS with them
 * (unless KAFKA_BROKERS, REDIS_URL or REDIS_CLUSTER_NODES, DATABASE_URL name
 * existing servers, with their own TLS settings; SOTTO_REDIS=cluster starts a
 * local Redis Cluster of 3 masters and 3 replicas instead of one Redis) and prepares the key-vault's SoftHSM2 token (unless
 * PKCS11_MODULE, PKCS11_TOKEN_LABEL and PKCS11_PIN name another HSM), then the
 * six services, all over TLS; writes .sotto/stack.json; stops everything in
 * order on Ctrl-C.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createServer, isIP } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import {
  clientTlsVariables,
  commaList,
  hostPort,
  parseEnvironment,
  rateLimitsSwitch,
  url,
  EnvironmentError,
  type EnvironmentProblem,
} from '@sotto/platform/config';
import { kafkaEnv } from '@sotto/platform/kafka';
import { postgresEnv } from '@sotto/platform/postgres';
import { redisEnv } from '@sotto/platform/redis';
import {
  ensureSystemPackages,
  prepareSoftHsm,
  repoRoot,
  startKafka,
  startPostgres,
  startRedis,
  startRedisCluster,
  storageServerTls,
  STORAGE_SERVERS,
  type RunningRedisCluster,
  type RunningServer,
} from '@sotto/local-infra';
import {
  everyService,
  operatorTls,
  postgresUrlWithTls,
  preparePlatformPki,
  SERVICE_NAMES,
  startPlatform,
  type HsmEndpoint,
  type Platform,
} from '@sotto/stack';

const startEnv = z.object({
  SOTTO_GATEWAY_ADDR: hostPort().default('127.0.0.1:7400'),
  /** Where data, logs and stack.json live; `.sotto` in the repository by default. */
  SOTTO_STATE_DIR: z.string().optional(),
  KAFKA_BROKERS: commaList().optional(),
  REDIS_URL: url(['redis', 'rediss']).optional(),
  REDIS_CLUSTER_NODES: commaList().optional(),
  /** "cluster": with no Redis named, start a local Redis Cluster (3 masters, 3 replicas) instead of one server. */
  SOTTO_REDIS: z.enum(['server', 'cluster'], { message: 'expected server or cluster' }).default('server'),
  DATABASE_URL: url(['postgres', 'postgresql']).optional(),
  // Another HSM for the key-vault, all three or none; the vault checks them when it starts.
  PKCS11_MODULE: z.string().optional(),
  PKCS11_TOKEN_LABEL: z.string().optional(),
  PKCS11_PIN: z.string().optional(),
  /** "off" turns every rate limit of every service off: for load tests only. */
  SOTTO_RATE_LIMITS: rateLimitsSwitch(),
});

/**
 * The servers of the operator's own that the environment may name, with the
 * variables (read by the services) that say how to reach them over TLS.
 */
const OWN_SERVERS = [
  { address: ['KAFKA_BROKERS'], schema: kafkaEnv, tls: ['KAFKA_SECURITY_PROTOCOL', ...tlsFiles('KAFKA')] },
  {
    address: ['REDIS_URL', 'REDIS_CLUSTER_NODES'],
    schema: redisEnv,
    tls: [...tlsFiles('REDIS'), 'REDIS_CLUSTER_TLS'],
  },
  { address: ['DATABASE_URL'], schema: postgresEnv, tls: tlsFiles('DATABASE') },
];

function tlsFiles(prefix: string): string[] {
  const { ca, cert, key } = clientTlsVariables(prefix);
  return [ca, cert, key];
}

/**
 * What is wrong with the TLS settings of the servers of the operator's own,
 * said before anything starts: the services would each stop on it. TLS
 * settings without the server's address are refused too: the local servers'
 * certificates come from .sotto/tls, and a variable that would be ignored is
 * a mistake.
 */
function ownServerProblems(env: Record<string, string | undefined>): EnvironmentProblem[] {
  const given = (name: string): boolean => (env[name] ?? '') !== '';
  return OWN_SERVERS.flatMap(({ address, schema, tls }) => {
    if (!address.some(given)) {
      return tls.filter(given).map((variable) => ({
        variable,
        message: `is for a server of your own, named by ${address.join(' or ')}; the local one uses the certificates in .sotto/tls`,
      }));
    }
    try {
      parseEnvironment(schema, env);
      return [];
    } catch (error) {
      if (error instanceof EnvironmentError) return [...error.problems];
      throw error;
    }
  });
}

/** The HSM the environment names, if it names one completely. */
function configuredHsm(env: z.output<typeof startEnv>): HsmEndpoint | undefined {
  const { PKCS11_MODULE: modulePath, PKCS11_TOKEN_LABEL: tokenLabel, PKCS11_PIN: pin } = env;
  if (modulePath === undefined && tokenLabel === undefined && pin === undefined) return undefined;
  if (modulePath === undefined || tokenLabel === undefined || pin === undefined) {
    throw new Error(
      'set all of PKCS11_MODULE, PKCS11_TOKEN_LABEL and PKCS11_PIN to use another HSM, or none',
    );
  }
  return { modulePath, tokenLabel, pin };
}

/**
 * The names clients may reach the gateway by, beyond localhost and the
 * loopback addresses every certificate carries: the host it listens on, or
 * this machine's name when it listens on every address.
 */
function gatewayHosts(address: string): string[] {
  const host = address.slice(0, address.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  const wildcard = host === '0.0.0.0' || (isIP(host) === 6 && /^[:0]+$/.test(host));
  return [wildcard ? hostname() : host];
}

const say = (message: string): void => void process.stdout.write(`${message}\n`);
const warn = (message: string): void => void process.stderr.write(`${message}\n`);

interface Lock {
  pid: number;
  gateway: string;
  /** Every process this run started, so a run that was killed can be cleaned up by the next. */
  children: number[];
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the run lock, or explains who holds it. Leftovers of a killed run are stopped first. */
function acquireLock(file: string, gateway: string): (children: number[]) => void {
  for (;;) {
    try {
      const fd = openSync(file, 'wx');
      const write = (children: number[]): void => {
        writeFileSync(file, JSON.stringify({ pid: process.pid, gateway, children } satisfies Lock));
      };
      writeSync(fd, JSON.stringify({ pid: process.pid, gateway, children: [] } satisfies Lock));
      closeSync(fd);
      return write;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let lock: Lock | undefined;
    try {
      lock = JSON.parse(readFileSync(file, 'utf8')) as Lock;
    } catch {
      lock = undefined;
    }
    if (lock && isAlive(lock.pid)) {
      throw new Error(
        `Sotto is already running (pid ${lock.pid}, gateway ${lock.gateway}). ` +
          `Stop it with Ctrl-C in its terminal, or \`kill ${lock.pid}\`, before starting another.`,
      );
    }
    const leftovers = (lock?.children ?? []).filter(isAlive);
    if (leftovers.length > 0) {
      warn(`stopping ${leftovers.length} process(es) left behind by a run that did not stop cleanly`);
      for (const pid of leftovers) killGroup(pid, 'SIGKILL');
    }
    rmSync(file, { force: true });
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

async function assertFree(address: string): Promise<void> {
  const index = address.lastIndexOf(':');
  const host = address.slice(0, index);
  const port = Number(address.slice(index + 1));
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new Error(
          error.code === 'EADDRINUSE'
            ? `the gateway address ${address} is already in use; set SOTTO_GATEWAY_ADDR to another host:port`
            : `cannot listen on ${address}: ${error.message}`,
        ),
      ),
    );
    server.listen(port, host, () => server.close(() => resolve()));
  });
}

async function main(): Promise<number> {
  let env: z.output<typeof startEnv>;
  try {
    env = parseEnvironment(startEnv);
    const problems = ownServerProblems(process.env);
    if (problems.length > 0) throw new EnvironmentError(problems);
  } catch (error) {
    if (error instanceof EnvironmentError) {
      warn(`sotto: ${error.message}`);
      return 78;
    }
    throw error;
  }

  const root = repoRoot();
  const stateDir = env.SOTTO_STATE_DIR ?? join(root, '.sotto');
  const dataDir = join(stateDir, 'data');
  const logDir = join(stateDir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const lockFile = join(stateDir, 'run.lock');
  const stackFile = join(stateDir, 'stack.json');

  let recordChildren: (children: number[]) => void;
  try {
    recordChildren = acquireLock(lockFile, env.SOTTO_GATEWAY_ADDR);
  } catch (error) {
    warn(`sotto: ${(error as Error).message}`);
    return 1;
  }
  const infra: RunningServer[] = [];
  let redisCluster: RunningRedisCluster | undefined;
  let platform: Platform | undefined;
  let stopping: Promise<void> | undefined;

  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      say('stopping Sotto…');
      await platform?.stop();
      await Promise.all([...infra.map((server) => server.stop()), redisCluster?.stop()]);
      rmSync(stackFile, { force: true });
      rmSync(lockFile, { force: true });
      say('stopped');
    })());

  const interrupted = new Promise<number>((resolve) => {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.on(signal, () => resolve(0));
    }
  });

  const track = (): void =>
    recordChildren([
      ...infra.map((server) => server.pid),
      ...(redisCluster?.pids ?? []),
      ...(platform ? Object.values(platform.services).map((service) => service.pid) : []),
    ]);

  try {
    await assertFree(env.SOTTO_GATEWAY_ADDR);
    const otherHsm = configuredHsm(env);
    const ownRedis = env.REDIS_URL !== undefined || env.REDIS_CLUSTER_NODES !== undefined;
    const needed = [!env.KAFKA_BROKERS, !ownRedis, !env.DATABASE_URL, !otherHsm].some(Boolean);
    if (needed) await ensureSystemPackages();

    const logger = { info: (m: string) => say(`  ${m}`), warn: (m: string) => warn(`  ${m}`) };
    const remember = <T extends RunningServer>(server: T): T => {
      infra.push(server);
      track();
      return server;
    };
    // Kept across runs; made again when expired, or when the gateway is reached by another name.
    const tls = await preparePlatformPki(join(stateDir, 'tls'), {
      hosts: gatewayHosts(env.SOTTO_GATEWAY_ADDR),
      logger,
    });
    say('starting infrastructure…');
    const startLocalRedis = async (): Promise<{
      redisUrl?: string;
      redisClusterNodes?: readonly string[];
    }> => {
      if (env.SOTTO_REDIS === 'cluster') {
        const cluster = await startRedisCluster({
          dataDir: join(dataDir, 'redis-cluster'),
          logger,
          tls: storageServerTls(tls, 'redis'),
        });
        redisCluster = cluster;
        track();
        return { redisClusterNodes: cluster.nodes };
      }
      const redis = await startRedis({
        dataDir: join(dataDir, 'redis'),
        logger,
        tls: storageServerTls(tls, 'redis'),
      });
      return { redisUrl: remember(redis).url };
    };
    const [kafkaBrokers, redisEndpoint, databaseUrl, hsm] = await Promise.all([
      env.KAFKA_BROKERS ??
        startKafka({ dataDir: join(dataDir, 'kafka'), logger, tls: storageServerTls(tls, 'kafka') }).then(
          (k) => remember(k).brokers,
        ),
      env.REDIS_URL !== undefined
        ? { redisUrl: env.REDIS_URL }
        : env.REDIS_CLUSTER_NODES !== undefined
          ? { redisClusterNodes: env.REDIS_CLUSTER_NODES }
          : startLocalRedis(),
      env.DATABASE_URL ??
        startPostgres({
          dataDir: join(dataDir, 'postgres'),
          logger,
          tls: storageServerTls(tls, 'postgres'),
        }).then((p) => remember(p).url),
      // Kept in the data dir: the vault's database is sealed by a key in this token.
      otherHsm ?? prepareSoftHsm({ dataDir: join(dataDir, 'softhsm'), logger }),
    ]);
    // The servers started here serve TLS with the local CA's certificates; the others are the operator's.
    const storageTls = STORAGE_SERVERS.filter(
      (name) =>
        infra.some((server) => server.name === name && server.ca !== undefined) ||
        (name === 'redis' && redisCluster?.ca !== undefined),
    );
    const { redisUrl, redisClusterNodes } = redisEndpoint;
    const redisShown = redisClusterNodes === undefined ? redisUrl : `cluster ${redisClusterNodes.join(',')}`;
    say(`  kafka ${kafkaBrokers.join(',')} · redis ${String(redisShown)} · postgres ${databaseUrl}`);

    say(`starting ${SERVICE_NAMES.join(', ')}…`);
    const backupBlobDir = join(dataDir, 'backups');
    platform = await startPlatform({
      infra: { kafkaBrokers, ...redisEndpoint, databaseUrl, hsm, tls, storageTls },
      gatewayAddr: env.SOTTO_GATEWAY_ADDR,
      logDir,
      backupBlobDir,
      env: everyService({ SOTTO_RATE_LIMITS: env.SOTTO_RATE_LIMITS }),
    });
    track();

    const { services } = platform;
    const operator = operatorTls(tls);
    const stack = {
      gateway: platform.gateway,
      // The CA clients verify the gateway with (the CLI finds it here), and the operator's
      // certificate, which may call Health and reflection on every service and nothing else.
      tls: { ca: tls.ca, clientCert: operator.cert, clientKey: operator.key },
      // The sealed-sender trust root clients pin (the CLI finds it here); new on every start.
      senderCertificateTrustRoot: platform.senderCertificateTrustRoot,
      kafkaBrokers,
      ...redisEndpoint,
      // psql and pg take the local database's URL whole: with the operator's certificate in it.
      databaseUrl: storageTls.includes('postgres') ? postgresUrlWithTls(databaseUrl, operator) : databaseUrl,
      // The servers that serve mutual TLS with certificates of tls.ca, and take the operator's.
      storageTls,
      backupBlobDir,
      services: Object.fromEntries(
        SERVICE_NAMES.map((name) => [name, { grpc: services[name].grpc, metrics: services[name].metrics }]),
      ),
    };
    writeFileSync(stackFile, `${JSON.stringify(stack, null, 2)}\n`);
    say('');
    say(`Sotto is running. Gateway: ${platform.gateway}`);
    say(`Endpoints: ${stackFile}`);
    say(
      `TLS: every service serves TLS 1.3${storageTls.length > 0 ? `, and so do ${storageTls.join(', ')}` : ''}; the CA is ${tls.ca}`,
    );
    say(`Logs: ${logDir}`);
    if (env.SOTTO_RATE_LIMITS === 'off') {
      warn('WARNING: SOTTO_RATE_LIMITS=off: every rate limit is off. For load tests only.');
    }
    say('Press Ctrl-C to stop.');

    // A service that dies on its own takes the platform down with it, loudly.
    const crashed = Promise.race(
      Object.values(platform.services).map((service) =>
        service.exited.then((code) => ({ name: service.name, code, logFile: service.logFile })),
      ),
    ).then(({ name, code, logFile }) => {
      if (stopping) return 0;
      warn(`${name} exited unexpectedly (${code}); see ${logFile}`);
      return 1;
    });
    const code = await Promise.race([interrupted, crashed]);
    // Whichever came first, finish the orderly stop before the process ends.
    await stop();
    return code;
  } catch (error) {
    warn(`sotto: ${(error as Error).message}`);
    await stop();
    return 1;
  }
}

void main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    warn(`sotto: ${(error as Error).stack ?? String(error)}`);
    process.exit(1);
  },
);
