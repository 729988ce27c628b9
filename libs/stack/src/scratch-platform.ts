import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ensureSystemPackages,
  startInfrastructure,
  startRedisCluster,
  storageServerTls,
  type Infrastructure,
  type RunningRedisCluster,
} from '@sotto/local-infra';
import { startPlatform, type Platform, type PlatformOptions } from './platform';
import { everyService, localInfraEndpoints, preparePlatformPki, type InfraEndpoints } from './services';

export interface ScratchPlatform {
  readonly platform: Platform;
  /** Every process it runs: the six services and Kafka, Redis, PostgreSQL. */
  readonly pids: Record<string, number>;
  /** The CA its gateway's certificate is issued by. */
  readonly ca: string;
  /** Its Kafka, Redis and PostgreSQL, and the certificates (the operator's included) of its CA. */
  readonly infra: InfraEndpoints;
  /** The processes of its Kafka (each node of a cluster), Redis and PostgreSQL. */
  readonly servers: Infrastructure;
  /** The Redis Cluster the services use, when started with `redisCluster` (servers.redis then idles). */
  readonly redisCluster?: RunningRedisCluster;
  /** Stops everything and deletes the scratch directory. */
  stop(): Promise<void>;
}

export interface ScratchPlatformOptions {
  /** Kafka, Redis and PostgreSQL without TLS (to measure what it costs); mutual TLS otherwise. */
  readonly plaintextStorage?: boolean;
  /** Kafka as a local KRaft cluster of this many brokers rather than one. */
  readonly kafkaNodes?: number;
  /** The services on a local Redis Cluster of 3 masters and 3 replicas rather than one Redis (as SOTTO_REDIS=cluster npm start). */
  readonly redisCluster?: boolean;
}

/**
 * Kafka, Redis, PostgreSQL, a SoftHSM2 token and the six services in a
 * scratch directory (`prefix` names it), exactly as `npm start` runs them
 * but with SOTTO_RATE_LIMITS=off: the tools that start one, the load
 * generators and the fuzzer, are the scripts the limits are there to stop.
 * `env` adds variables to (or overrides them for) some services.
 */
export async function startScratchPlatform(
  prefix: string,
  say: (line: string) => void,
  env: PlatformOptions['env'] = {},
  { plaintextStorage = false, kafkaNodes, redisCluster = false }: ScratchPlatformOptions = {},
): Promise<ScratchPlatform> {
  const workDir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  let infra: Infrastructure | undefined;
  let cluster: RunningRedisCluster | undefined;
  let platform: Platform | undefined;
  const stop = async (): Promise<void> => {
    await platform?.stop();
    await cluster?.stop();
    await infra?.stop();
    rmSync(workDir, { recursive: true, force: true });
  };
  try {
    await ensureSystemPackages();
    say(
      `starting Kafka${kafkaNodes === undefined ? '' : ` (${kafkaNodes} brokers)`}, Redis${redisCluster ? ' Cluster (3 masters, 3 replicas)' : ''}, PostgreSQL (${plaintextStorage ? 'plaintext' : 'TLS'}) and the six services, with SOTTO_RATE_LIMITS=off`,
    );
    const tls = await preparePlatformPki(join(workDir, 'tls'));
    infra = await startInfrastructure({
      dataDir: join(workDir, 'infra'),
      ...(plaintextStorage ? {} : { tls }),
      ...(kafkaNodes === undefined ? {} : { kafkaNodes }),
    });
    const { redisUrl, ...common } = localInfraEndpoints(infra, tls);
    if (redisCluster) {
      cluster = await startRedisCluster({
        dataDir: join(workDir, 'infra', 'redis-cluster'),
        ...(plaintextStorage ? {} : { tls: storageServerTls(tls, 'redis') }),
      });
    }
    const endpoints =
      cluster === undefined ? { ...common, redisUrl } : { ...common, redisClusterNodes: cluster.nodes };
    platform = await startPlatform({
      infra: endpoints,
      logDir: join(workDir, 'logs'),
      backupBlobDir: join(workDir, 'blobs'),
      env: everyService({ SOTTO_RATE_LIMITS: 'off' }, env),
    });
    const pids: Record<string, number> = {};
    for (const service of Object.values(platform.services)) pids[service.name] = service.pid;
    for (const backing of [infra.kafka, infra.redis, infra.postgres]) pids[backing.name] = backing.pid;
    if (cluster !== undefined) {
      delete pids['redis'];
      cluster.pids.forEach((pid, i) => (pids[`redis-${i}`] = pid));
    }
    if ('nodes' in infra.kafka) {
      delete pids['kafka'];
      for (const node of infra.kafka.nodes) pids[`kafka-${node.id}`] = node.pid;
    }
    return {
      platform,
      pids,
      ca: tls.ca,
      infra: endpoints,
      servers: infra,
      ...(cluster === undefined ? {} : { redisCluster: cluster }),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
