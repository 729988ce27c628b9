import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { clientTlsOptions } from '@sotto/platform/tls';
import { errorMessage, ManagedProcess, sleep } from './process';
import { freePort } from './ports';
import { repoRoot } from './repo-root';
import { javaBinary, run, which, type RunResult } from './system';
import {
  silentLogger,
  type KafkaClusterNode,
  type Logger,
  type RunningKafka,
  type RunningKafkaCluster,
  type ServerTls,
  type StartOptions,
} from './types';

const READY_TIMEOUT_MS = 120_000;
const NODE_ID = 1;

/** Path of the Maven build file that resolves the broker's jars and Kafka's command-line tools. */
export function kafkaPom(): string {
  return join(repoRoot(), 'tools', 'kafka', 'pom.xml');
}

/**
 * Where the resolved classpath is cached. Keyed by the pom's hash so Maven runs only when the pom
 * changes; tools/ci/install-system-deps.sh writes the same file.
 */
export function kafkaClasspathCacheFile(): string {
  const hash = createHash('sha256').update(readFileSync(kafkaPom())).digest('hex').slice(0, 16);
  return join(repoRoot(), '.sotto', 'cache', `kafka-classpath-${hash}.txt`);
}

let classpathInFlight: Promise<string> | undefined;

/** The broker's classpath, from the cache or else from Maven (~/.m2 keeps the jars between runs). */
export function kafkaClasspath(logger: Logger = silentLogger): Promise<string> {
  classpathInFlight ??= resolveClasspath(logger).finally(() => {
    classpathInFlight = undefined;
  });
  return classpathInFlight;
}

async function resolveClasspath(logger: Logger): Promise<string> {
  const cacheFile = kafkaClasspathCacheFile();
  if (existsSync(cacheFile)) {
    const cached = readFileSync(cacheFile, 'utf8').trim();
    // ~/.m2 may have been wiped since; then resolve again.
    if (cached !== '' && cached.split(':').every((jar) => existsSync(jar))) return cached;
  }
  const mvn = which('mvn');
  if (mvn === undefined) {
    throw new Error('mvn not found on PATH; it is needed to fetch Kafka. Install the Debian package maven');
  }
  logger.info('kafka: resolving broker jars with Maven (first run or tools/kafka/pom.xml changed)');
  mkdirSync(join(cacheFile, '..'), { recursive: true });
  const tmp = `${cacheFile}.${process.pid}.tmp`;
  const result = await run(mvn, [
    '-q',
    '-B',
    '-Dstyle.color=never',
    '-f',
    kafkaPom(),
    'dependency:build-classpath',
    `-Dmdep.outputFile=${tmp}`,
  ]);
  if (result.code !== 0 || !existsSync(tmp)) {
    rmSync(tmp, { force: true });
    throw new Error(
      `kafka: Maven could not resolve the broker jars (exit ${String(result.code)}):\n${result.output.trim()}`,
    );
  }
  // Rename so a concurrent reader never sees a half-written file.
  renameSync(tmp, cacheFile);
  return readFileSync(cacheFile, 'utf8').trim();
}

/** A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (Kafka's Uuid format). */
function newClusterId(): string {
  for (;;) {
    const id = Buffer.from(new Uint8Array(randomBytes(16))).toString('base64url');
    if (!id.startsWith('-')) return id; // Kafka rejects ids that look like command-line flags
  }
}

/**
 * The broker's TLS settings: its key and certificate chain as one PEM file,
 * which Kafka reads as a keystore, and the CA as a PEM truststore. Every
 * listener, the controller's included, takes only TLS 1.3 clients with a
 * certificate of the CA; the broker itself dials the controller with its own
 * certificate and checks the controller's names the host it dials.
 */
function tlsProperties(dataDir: string, tls: ServerTls): Record<string, string> {
  return {
    ...pemStoreProperties(join(dataDir, 'broker-keystore.pem'), tls),
    'ssl.client.auth': 'required',
    'ssl.protocol': 'TLSv1.3',
    'ssl.enabled.protocols': 'TLSv1.3',
    'ssl.endpoint.identification.algorithm': 'https',
  };
}

/**
 * A Java client's or server's key and certificate chain as one PEM file at
 * `keystore`, which Kafka reads as a keystore, and the CA as a PEM truststore.
 */
function pemStoreProperties(keystore: string, tls: ServerTls): Record<string, string> {
  const pem = (file: string): string => `${readFileSync(file, 'utf8').trimEnd()}\n`;
  writeFileSync(keystore, pem(tls.identity.key) + pem(tls.identity.cert), { mode: 0o600 });
  return {
    'ssl.keystore.type': 'PEM',
    'ssl.keystore.location': keystore,
    'ssl.truststore.type': 'PEM',
    'ssl.truststore.location': tls.ca,
  };
}

/**
 * A properties file in `dir` for one of Kafka's own Java clients (a tool's
 * --producer.config or --consumer.config) reaching `brokers`: under TLS, as
 * the broker requires, with `tls.identity` as the client's certificate.
 * Returns its path.
 */
export function kafkaClientConfig(
  dir: string,
  brokers: readonly string[],
  tls: ServerTls | undefined,
): string {
  mkdirSync(dir, { recursive: true });
  const props: Record<string, string> = {
    'bootstrap.servers': brokers.join(','),
    ...(tls
      ? {
          'security.protocol': 'SSL',
          ...pemStoreProperties(join(dir, 'client-keystore.pem'), tls),
          'ssl.protocol': 'TLSv1.3',
          'ssl.enabled.protocols': 'TLSv1.3',
        }
      : {}),
  };
  const file = join(dir, 'client.properties');
  writeFileSync(
    file,
    `${Object.entries(props)
      .map(([key, value]) => `${key}=${value}`)
      .join('\n')}\n`,
    { mode: 0o600 },
  );
  return file;
}

/**
 * Runs one of Kafka's command-line tools from the kafka-tools artifact (a
 * class such as org.apache.kafka.tools.ProducerPerformance, what the
 * distribution's bin/kafka-producer-perf-test.sh runs) on the JDK, with the
 * classpath the broker runs on, to completion.
 */
export async function runKafkaTool(
  mainClass: string,
  args: readonly string[],
  logger: Logger = silentLogger,
): Promise<RunResult> {
  const java = javaBinary();
  if (java === undefined) {
    throw new Error(
      'java not found ($JAVA_HOME/bin/java or PATH); install the Debian package default-jre-headless',
    );
  }
  const classpath = await kafkaClasspath(logger);
  return run(java, [
    '-Xmx512m',
    '-XX:+UseG1GC',
    '-Djava.awt.headless=true',
    '-cp',
    classpath,
    mainClass,
    ...args,
  ]);
}

/** Where one KRaft node (broker and controller in one process) listens. */
interface KafkaNodeLayout {
  readonly id: number;
  readonly port: number;
  readonly controllerPort: number;
}

function serverProperties(
  dataDir: string,
  node: KafkaNodeLayout,
  voters: readonly KafkaNodeLayout[],
  tls: ServerTls | undefined,
): string {
  const protocol = tls ? 'SSL' : 'PLAINTEXT';
  // Every internal topic on every broker of a cluster, and a write needs two of them, as in production.
  const replication = Math.min(3, voters.length);
  const minInsync = replication > 1 ? 2 : 1;
  const props: Record<string, string | number | boolean> = {
    'process.roles': 'broker,controller',
    'node.id': node.id,
    // A static voter set: the controllers' addresses live only in this file, not in the metadata
    // log, so the next start may pick different ports.
    'controller.quorum.voters': voters.map((v) => `${v.id}@127.0.0.1:${v.controllerPort}`).join(','),
    listeners: `BROKER://127.0.0.1:${node.port},CONTROLLER://127.0.0.1:${node.controllerPort}`,
    'advertised.listeners': `BROKER://127.0.0.1:${node.port}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'BROKER',
    'listener.security.protocol.map': `BROKER:${protocol},CONTROLLER:${protocol}`,
    ...(tls ? tlsProperties(dataDir, tls) : {}),
    'log.dirs': join(dataDir, 'data'),
    'num.partitions': 8,
    'auto.create.topics.enable': false,
    'default.replication.factor': replication,
    'min.insync.replicas': minInsync,
    'offsets.topic.replication.factor': replication,
    // Fewer internal partitions than the default 50: the first consumer group starts faster.
    'offsets.topic.num.partitions': 8,
    'transaction.state.log.replication.factor': replication,
    'transaction.state.log.min.isr': minInsync,
    'transaction.state.log.num.partitions': 8,
    'share.coordinator.state.topic.replication.factor': replication,
    'share.coordinator.state.topic.min.isr': minInsync,
    'group.initial.rebalance.delay.ms': 0,
    // A killed broker is fenced, and its partitions led elsewhere, after 4 s without a heartbeat
    // rather than 9: fault runs on one machine see a failover at the speed of a tuned cluster.
    'broker.session.timeout.ms': 4000,
    'broker.heartbeat.interval.ms': 1000,
  };
  return `${Object.entries(props)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join('\n')}\n`;
}

function log4j2Properties(logFile: string): string {
  // Kafka's logs go to a size-bounded file in the data dir, never to the parent's stdout.
  return [
    'status = warn',
    'appender.file.type = RollingFile',
    'appender.file.name = FILE',
    `appender.file.fileName = ${logFile}`,
    `appender.file.filePattern = ${logFile}.%i`,
    'appender.file.layout.type = PatternLayout',
    'appender.file.layout.pattern = [%d] %p %m (%c)%n',
    'appender.file.policies.type = Policies',
    'appender.file.policies.size.type = SizeBasedTriggeringPolicy',
    'appender.file.policies.size.size = 50MB',
    'appender.file.strategy.type = DefaultRolloverStrategy',
    'appender.file.strategy.max = 3',
    'rootLogger.level = INFO',
    'rootLogger.appenderRef.file.ref = FILE',
    // Request-level chatter is noise for local use.
    'logger.request.name = kafka.request.logger',
    'logger.request.level = WARN',
    '',
  ].join('\n');
}

function probeClient(brokers: string[], tls: ServerTls | undefined): Kafka {
  return new Kafka({
    clientId: 'sotto-local-infra-probe',
    brokers,
    // Under TLS, as any client must: verifying the broker, presenting a certificate of the CA.
    ...(tls ? { ssl: clientTlsOptions({ ca: tls.ca, ...tls.identity }) } : {}),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 2000,
    requestTimeout: 5000,
    retry: { retries: 0 },
  });
}

async function probe(brokers: string[], tls: ServerTls | undefined): Promise<void> {
  const kafka = probeClient(brokers, tls);
  const admin = kafka.admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    if (cluster.brokers.length === 0) throw new Error('no brokers registered yet');
    await admin.listTopics();
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

function jvmArguments(dataDir: string, classpath: string, heap: string): string[] {
  return [
    '-Xms128m',
    `-Xmx${heap}`,
    '-XX:+UseG1GC',
    '-XX:MaxGCPauseMillis=20',
    '-XX:+ExitOnOutOfMemoryError',
    '-Djava.awt.headless=true',
    `-Dlog4j2.configurationFile=${join(dataDir, 'log4j2.properties')}`,
    `-Dkafka.logs.dir=${dataDir}`,
    '-cp',
    classpath,
  ];
}

interface KafkaNodeOptions {
  readonly dataDir: string;
  readonly node: KafkaNodeLayout;
  readonly voters: readonly KafkaNodeLayout[];
  /** Formats an empty data dir with this cluster id (kept in dataDir/cluster-id). */
  readonly clusterId: () => string;
  readonly tls: ServerTls | undefined;
  readonly heap: string;
  readonly logger: Logger;
}

/** Writes a node's configuration, formats its storage the first time, and spawns it (not yet ready). */
async function spawnKafkaNode(opts: KafkaNodeOptions): Promise<ManagedProcess> {
  const { dataDir, logger } = opts;
  mkdirSync(dataDir, { recursive: true });
  const java = javaBinary();
  if (java === undefined) {
    throw new Error(
      'java not found ($JAVA_HOME/bin/java or PATH); install the Debian package default-jre-headless',
    );
  }
  const classpath = await kafkaClasspath(logger);
  const logFile = join(dataDir, 'kafka.log');
  const outFile = join(dataDir, 'kafka.out'); // JVM stdout/stderr: crashes before log4j starts
  const propsFile = join(dataDir, 'server.properties');
  // Ports change between runs, so both files are rewritten on every start.
  writeFileSync(propsFile, serverProperties(dataDir, opts.node, opts.voters, opts.tls));
  writeFileSync(join(dataDir, 'log4j2.properties'), log4j2Properties(logFile));
  const jvmArgs = jvmArguments(dataDir, classpath, opts.heap);

  const clusterIdFile = join(dataDir, 'cluster-id');
  const logDir = join(dataDir, 'data');
  if (!existsSync(join(logDir, 'meta.properties'))) {
    // Format once; the cluster id is kept so a half-done format can be retried with the same id.
    if (!existsSync(clusterIdFile)) writeFileSync(clusterIdFile, `${opts.clusterId()}\n`);
    const clusterId = readFileSync(clusterIdFile, 'utf8').trim();
    rmSync(logDir, { recursive: true, force: true });
    logger.info(`kafka: formatting storage in ${logDir} (cluster ${clusterId})`);
    const result = await run(
      java,
      [...jvmArgs, 'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', propsFile],
      { cwd: dataDir },
    );
    if (result.code !== 0) {
      throw new Error(`kafka: storage format failed (exit ${String(result.code)}):\n${result.output.trim()}`);
    }
  }
  return ManagedProcess.spawn({
    name: 'kafka',
    command: java,
    args: [...jvmArgs, 'kafka.Kafka', propsFile],
    cwd: dataDir,
    outputFile: outFile,
    logFiles: [logFile, outFile],
    // SIGTERM runs Kafka's shutdown hook: controlled shutdown, logs flushed and closed cleanly.
    stopSignal: 'SIGTERM',
    pidFile: join(dataDir, 'kafka.pid'),
    marker: propsFile,
    logger,
  });
}

/** Spawns a node and waits until its broker answers a client, stopping it if it never does. */
async function startKafkaNode(opts: KafkaNodeOptions): Promise<ManagedProcess> {
  const child = await spawnKafkaNode(opts);
  try {
    await child.waitReady(() => probe([`127.0.0.1:${opts.node.port}`], opts.tls), READY_TIMEOUT_MS);
  } catch (err) {
    await child.stop();
    throw err;
  }
  return child;
}

/** Two free loopback ports, distinct from each other and from `taken`. */
async function nodePorts(taken: Set<number>): Promise<{ port: number; controllerPort: number }> {
  const next = async (): Promise<number> => {
    let port = await freePort();
    while (taken.has(port)) port = await freePort();
    taken.add(port);
    return port;
  };
  return { port: await next(), controllerPort: await next() };
}

export async function startKafka(opts: StartOptions): Promise<RunningKafka> {
  const logger = opts.logger ?? silentLogger;
  const dataDir = resolve(opts.dataDir);
  const taken = new Set<number>(opts.port === undefined ? [] : [opts.port]);
  const ports = await nodePorts(taken);
  const node = { id: NODE_ID, port: opts.port ?? ports.port, controllerPort: ports.controllerPort };
  const brokers = [`127.0.0.1:${node.port}`];
  const started = Date.now();
  const child = await startKafkaNode({
    dataDir,
    node,
    voters: [node],
    clusterId: newClusterId,
    tls: opts.tls,
    heap: '768m',
    logger,
  });
  logger.info(
    `kafka ready on ${brokers[0]}${opts.tls ? ' (TLS)' : ''} in ${Date.now() - started} ms (pid ${child.pid})`,
  );
  return {
    name: 'kafka',
    pid: child.pid,
    brokers,
    ...(opts.tls ? { ca: opts.tls.ca } : {}),
    stop: () => child.stop(),
  };
}

export interface KafkaClusterOptions extends Omit<StartOptions, 'port'> {
  /** How many nodes, each a broker and a controller voter: 3 by default. */
  readonly nodes?: number;
}

/**
 * A KRaft cluster of `nodes` processes on free loopback ports, each a broker
 * and a controller voter, under dataDir/node-N, with the same TLS as
 * startKafka. Internal topics are replicated to min(3, nodes) brokers and
 * need two in sync for a write, as a production cluster's. Resolves once
 * every broker is registered. A node can be killed like a power cut and
 * started again on the same ports and data (fault runs); `stop` stops every
 * node still running.
 */
export async function startKafkaCluster(opts: KafkaClusterOptions): Promise<RunningKafkaCluster> {
  const logger = opts.logger ?? silentLogger;
  const dataDir = resolve(opts.dataDir);
  const count = opts.nodes ?? 3;
  if (!Number.isInteger(count) || count < 1)
    throw new Error(`kafka cluster: expected 1 or more nodes, got ${count}`);
  const taken = new Set<number>();
  const layouts: KafkaNodeLayout[] = [];
  for (let id = 1; id <= count; id++) layouts.push({ id, ...(await nodePorts(taken)) });
  // One id for the whole cluster, written into every node's storage.
  const idFile = join(dataDir, 'cluster-id');
  mkdirSync(dataDir, { recursive: true });
  if (!existsSync(idFile)) writeFileSync(idFile, `${newClusterId()}\n`);
  const clusterId = readFileSync(idFile, 'utf8').trim();
  const nodeOptions = (node: KafkaNodeLayout): KafkaNodeOptions => ({
    dataDir: join(dataDir, `node-${node.id}`),
    node,
    voters: layouts,
    clusterId: () => clusterId,
    tls: opts.tls,
    heap: '512m',
    logger,
  });
  const brokers = layouts.map((node) => `127.0.0.1:${node.port}`);
  const started = Date.now();
  // All at once: no node is ready before a majority of the voters is up.
  const spawned = await Promise.allSettled(layouts.map((node) => startKafkaNode(nodeOptions(node))));
  const children = spawned.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failure = spawned.find((r) => r.status === 'rejected');
  if (failure !== undefined) {
    await Promise.all(children.map((child) => child.stop()));
    throw failure.reason;
  }
  const processes = new Map<number, ManagedProcess>(layouts.map((node, i) => [node.id, children[i]]));
  try {
    await waitFor(
      async () => (await registeredBrokers(brokers, opts.tls)) === count,
      READY_TIMEOUT_MS,
      `kafka cluster: not all ${count} brokers registered`,
    );
  } catch (err) {
    await Promise.all(children.map((child) => child.stop()));
    throw err;
  }
  logger.info(
    `kafka cluster of ${count} ready on ${brokers.join(',')}${opts.tls ? ' (TLS)' : ''} in ${Date.now() - started} ms`,
  );
  const current = (id: number): ManagedProcess => {
    const child = processes.get(id);
    if (child === undefined) throw new Error(`kafka cluster: no node ${id}`);
    return child;
  };
  const nodes: KafkaClusterNode[] = layouts.map((layout, i) => ({
    id: layout.id,
    broker: brokers[i] ?? '',
    get pid() {
      return current(layout.id).pid;
    },
    kill: () => current(layout.id).kill(),
    start: async () => {
      if (!current(layout.id).hasExited) throw new Error(`kafka cluster: node ${layout.id} is running`);
      processes.set(layout.id, await startKafkaNode(nodeOptions(layout)));
    },
  }));
  let stopping: Promise<void> | undefined;
  return {
    name: 'kafka',
    get pid() {
      return current(1).pid;
    },
    brokers,
    nodes,
    ...(opts.tls ? { ca: opts.tls.ca } : {}),
    stop: () => {
      stopping ??= Promise.all([...processes.values()].map((child) => child.stop())).then(() => undefined);
      return stopping;
    },
  };
}

async function registeredBrokers(brokers: string[], tls: ServerTls | undefined): Promise<number> {
  const kafka = probeClient(brokers, tls);
  const admin = kafka.admin();
  try {
    await admin.connect();
    return (await admin.describeCluster()).brokers.length;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'not checked yet';
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
      last = 'not yet';
    } catch (err) {
      last = errorMessage(err);
    }
    await sleep(250);
  }
  throw new Error(`${what} after ${Math.round(timeoutMs / 1000)} s (last: ${last})`);
}
