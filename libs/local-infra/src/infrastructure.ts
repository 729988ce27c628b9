import { join } from 'node:path';
import type { LocalPki } from '@sotto/platform/tls';
import { startKafka, startKafkaCluster } from './kafka';
import { startPostgres } from './postgres';
import { startRedis } from './redis';
import { prepareSoftHsm } from './softhsm';
import type {
  Infrastructure,
  Logger,
  RunningKafka,
  RunningKafkaCluster,
  RunningServer,
  ServerTls,
} from './types';

/** The servers startInfrastructure starts; under TLS, each serves the certificate of its name. */
export const STORAGE_SERVERS = ['kafka', 'redis', 'postgres'] as const;
export type StorageServer = (typeof STORAGE_SERVERS)[number];

function kafkaPids(kafka: RunningKafka | RunningKafkaCluster): number[] {
  return 'nodes' in kafka ? kafka.nodes.map((node) => node.pid) : [kafka.pid];
}

/** What a local server serves TLS with: the certificate of its name from the local CA. */
export function storageServerTls(pki: LocalPki, name: StorageServer): ServerTls {
  const identity = pki.identities[name];
  if (identity === undefined) throw new Error(`the local CA issued no certificate for ${name}`);
  return { ca: pki.ca, identity };
}

const serverTls = (pki: LocalPki | undefined, name: StorageServer): ServerTls | undefined =>
  pki === undefined ? undefined : storageServerTls(pki, name);

/**
 * Kafka (one broker, or a cluster of `kafkaNodes`), Redis and PostgreSQL in parallel under dataDir/{kafka,redis,postgres}, and the
 * key-vault's SoftHSM2 token under dataDir/softhsm. With `tls`, each server serves TLS 1.3 only,
 * with the certificate of its name from that CA, and takes only clients presenting one of its
 * certificates. If any fails, the ones that did start are stopped and the first failure is rethrown.
 */
export async function startInfrastructure(opts: {
  dataDir: string;
  logger?: Logger;
  tls?: LocalPki;
  /** Kafka as a KRaft cluster of this many nodes (startKafkaCluster) rather than one broker. */
  kafkaNodes?: number;
}): Promise<Infrastructure> {
  const base = { logger: opts.logger };
  const kafkaOptions = { ...base, dataDir: join(opts.dataDir, 'kafka'), tls: serverTls(opts.tls, 'kafka') };
  const [kafka, redis, postgres, hsm] = await Promise.allSettled([
    opts.kafkaNodes === undefined
      ? startKafka(kafkaOptions)
      : startKafkaCluster({ ...kafkaOptions, nodes: opts.kafkaNodes }),
    startRedis({ ...base, dataDir: join(opts.dataDir, 'redis'), tls: serverTls(opts.tls, 'redis') }),
    startPostgres({
      ...base,
      dataDir: join(opts.dataDir, 'postgres'),
      tls: serverTls(opts.tls, 'postgres'),
    }),
    prepareSoftHsm({ ...base, dataDir: join(opts.dataDir, 'softhsm') }),
  ]);
  if (
    kafka.status === 'fulfilled' &&
    redis.status === 'fulfilled' &&
    postgres.status === 'fulfilled' &&
    hsm.status === 'fulfilled'
  ) {
    const servers: RunningServer[] = [kafka.value, redis.value, postgres.value];
    let stopping: Promise<void> | undefined;
    return {
      kafka: kafka.value,
      redis: redis.value,
      postgres: postgres.value,
      hsm: hsm.value,
      // Every node of a Kafka cluster, as started.
      pids: [...kafkaPids(kafka.value), redis.value.pid, postgres.value.pid],
      stop: () => {
        stopping ??= Promise.all(servers.map((s) => s.stop())).then(() => undefined);
        return stopping;
      },
    };
  }
  const processes = [kafka, redis, postgres];
  await Promise.all(
    processes.flatMap((r) => (r.status === 'fulfilled' ? [r.value.stop().catch(() => undefined)] : [])),
  );
  const failures = [...processes, hsm].flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  for (const extra of failures.slice(1)) {
    opts.logger?.warn(`also failed: ${extra instanceof Error ? extra.message : String(extra)}`);
  }
  throw failures[0];
}
