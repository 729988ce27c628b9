import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { Kafka, logLevel, type KafkaConfig } from 'kafkajs';
import {
  clientTlsOptions,
  freePort,
  startKafkaCluster,
  startRedis,
  startRedisCluster,
  storageServerTls,
  type RunningKafkaCluster,
  type RunningRedis,
  type RunningRedisCluster,
  type StorageServer,
} from '@sotto/local-infra';
import { operatorTls, postgresUrlWithTls } from '@sotto/stack';
import { testInfra } from './infra';

/**
 * How a test reaches the harness's Kafka, Redis and PostgreSQL itself, to
 * look at what services stored: as the operator, whose certificate the
 * servers take like any of the run's CA. Services reach them with their own.
 */
function overTls(server: StorageServer): boolean {
  return (testInfra().storageTls ?? []).includes(server);
}

/** A client of the harness's Redis (or of `url`, e.g. a proxy in front of it). */
export function testRedis(url: string = testInfra().redisUrl): Redis {
  return new Redis(url, overTls('redis') ? { tls: clientTlsOptions(operatorTls(testInfra().tls)) } : {});
}

/** A connection as Redis lists it (CLIENT LIST): its id, and how many channels it is subscribed to. */
export interface RedisClientEntry {
  readonly id: string;
  readonly channels: number;
}

/** The connection Redis lists under this name (CLIENT SETNAME, ioredis' connectionName), if any. */
export async function redisClientNamed(redis: Redis, name: string): Promise<RedisClientEntry | undefined> {
  const list = (await redis.client('LIST')) as string;
  const line = list.split('\n').find((entry) => entry.includes(` name=${name} `));
  if (line === undefined) return undefined;
  const fields = new Map(
    line
      .trim()
      .split(' ')
      .map((pair) => pair.split('=', 2) as [string, string]),
  );
  return { id: fields.get('id') ?? '', channels: Number(fields.get('sub')) };
}

/** A Redis of a test's own, which the test may stop and start again. */
export interface PrivateRedis {
  /** Its URL, for a service's REDIS_URL; the same after a restart. */
  readonly url: string;
  /** Stops the server; clients see their connection closed and then refused. */
  stop(): Promise<void>;
  /** Starts it again on the same port, with the data it had (AOF). */
  start(): Promise<void>;
}

/**
 * A Redis server for one test, never the harness's shared one: for tests of
 * what services do while Redis is down. TLS like the harness's Redis when
 * that one serves TLS, so services reach it with their usual certificates.
 */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const infra = testInfra();
  const dataDir = mkdtempSync(join(infra.workDir, 'redis-'));
  const port = await freePort();
  const tls = overTls('redis') ? storageServerTls(infra.tls, 'redis') : undefined;
  let running: RunningRedis | undefined = await startRedis({ dataDir, port, tls });
  const { url } = running;
  return {
    url,
    async stop() {
      await running?.stop();
      running = undefined;
    },
    async start() {
      running ??= await startRedis({ dataDir, port, tls });
    },
  };
}

/** A Redis Cluster of a test's own: 3 masters, 3 replicas, TLS like the harness's Redis. */
export interface PrivateRedisCluster extends RunningRedisCluster {
  /** REDIS_CLUSTER_NODES, REDIS_CLUSTER_TLS and the operator's REDIS_TLS_* files, for a service or a client. */
  readonly env: Readonly<Record<string, string>>;
  /** A cluster client as the operator, with the options services use (TLS, masters only). */
  client(): Cluster;
}

export async function startPrivateRedisCluster(): Promise<PrivateRedisCluster> {
  const infra = testInfra();
  const dataDir = mkdtempSync(join(infra.workDir, 'redis-cluster-'));
  const tls = overTls('redis') ? storageServerTls(infra.tls, 'redis') : undefined;
  const cluster = await startRedisCluster({ dataDir, tls });
  const operator = tls === undefined ? undefined : operatorTls(infra.tls);
  const env: Record<string, string> = {
    REDIS_CLUSTER_NODES: cluster.nodes.join(','),
    ...(operator === undefined
      ? {}
      : {
          REDIS_CLUSTER_TLS: 'on',
          REDIS_TLS_CA: operator.ca,
          REDIS_TLS_CERT: operator.cert,
          REDIS_TLS_KEY: operator.key,
        }),
  };
  return {
    name: cluster.name,
    nodes: cluster.nodes,
    get pids() {
      return cluster.pids;
    },
    ...(cluster.ca === undefined ? {} : { ca: cluster.ca }),
    kill: (node) => cluster.kill(node),
    restart: (node) => cluster.restart(node),
    masters: () => cluster.masters(),
    moveSlot: (slot, to) => cluster.moveSlot(slot, to),
    waitHealthy: (timeoutMs) => cluster.waitHealthy(timeoutMs),
    stop: () => cluster.stop(),
    env,
    client: () =>
      new Cluster(
        cluster.nodes.map((node) => ({ host: '127.0.0.1', port: Number(node.split(':')[1]) })),
        {
          redisOptions: operator === undefined ? {} : { tls: clientTlsOptions(operator) },
          dnsLookup: (address, callback) => {
            callback(null, address);
          },
          scaleReads: 'master',
        },
      ),
  };
}

/** A client of the harness's Kafka. */
export function testKafka(config: Omit<KafkaConfig, 'brokers' | 'ssl'>): Kafka {
  return new Kafka({
    logLevel: logLevel.NOTHING,
    ...config,
    brokers: [...testInfra().kafkaBrokers],
    ...(overTls('kafka') ? { ssl: clientTlsOptions(operatorTls(testInfra().tls)) } : {}),
  });
}

/**
 * A database of the harness's PostgreSQL (the run's own by default) as a URL
 * that pg and psql take whole: with the operator's certificate and the CA in
 * it, libpq-style, when the server asks for TLS.
 */
export function operatorDatabaseUrl(url: string = testInfra().databaseUrl): string {
  return overTls('postgres') ? postgresUrlWithTls(url, operatorTls(testInfra().tls)) : url;
}

/**
 * A 3-broker Kafka of a test's own (KRaft, plaintext on loopback), for tests that stop or restart
 * brokers: the harness's Kafka is shared by every spec and must stay up.
 */
export function startPrivateKafkaCluster(): Promise<RunningKafkaCluster> {
  return startKafkaCluster({ dataDir: mkdtempSync(join(testInfra().workDir, 'kafka-cluster-')) });
}
