/**
 * What a fault run kills. Each fault SIGKILLs one instance of something the
 * message path runs on, like a power cut, then brings it back as an
 * orchestrator would and says when it is serving again. A Redis master
 * (killed, its replica promoted) is one more implementation of Fault.
 */
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { clientTlsOptions, type RunningKafkaCluster } from '@sotto/local-infra';
import type { Platform, ServiceName } from '@sotto/stack';

export interface Fault {
  /** What kind of thing it kills: 'message-relay', 'gateway', 'kafka-broker'. */
  readonly kind: string;
  /** SIGKILLs one instance and resolves once it is dead; returns which (say, 'kafka node 2'). */
  kill(): Promise<string>;
  /** Brings back what was killed and resolves once it serves again. */
  recover(): Promise<void>;
}

/** A service of the platform, SIGKILLed and restarted on its address with its environment. */
export function serviceFault(platform: Platform, name: ServiceName): Fault {
  return {
    kind: name,
    kill: async () => {
      const victim = platform.services[name];
      await victim.stop('SIGKILL');
      return `${name} (pid ${victim.pid})`;
    },
    recover: async () => {
      await platform.restart(name);
    },
  };
}

/** TLS a client of the cluster presents, when the cluster takes only TLS. */
export interface KafkaClientTls {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/**
 * One broker of the cluster at a time, each kill the next node: SIGKILLed,
 * started again on its ports and data, and counted as recovered once every
 * partition of every topic has all its replicas back in sync (so the next
 * kill cannot take a partition below min.insync.replicas).
 */
export function kafkaBrokerFault(cluster: RunningKafkaCluster, tls: KafkaClientTls | undefined): Fault {
  let next = 0;
  let killed: RunningKafkaCluster['nodes'][number] | undefined;
  return {
    kind: 'kafka-broker',
    kill: async () => {
      const node = cluster.nodes[next++ % cluster.nodes.length];
      if (node === undefined) throw new Error('the Kafka cluster has no nodes');
      const pid = node.pid;
      await node.kill();
      killed = node;
      return `kafka node ${node.id} (pid ${pid})`;
    },
    recover: async () => {
      if (killed === undefined) return;
      await killed.start();
      killed = undefined;
      await untilFullyReplicated(cluster.brokers, tls);
    },
  };
}

const REPLICATION_TIMEOUT_MS = 180_000;

async function untilFullyReplicated(
  brokers: readonly string[],
  tls: KafkaClientTls | undefined,
): Promise<void> {
  const admin = new Kafka({
    clientId: 'sotto-chaos',
    brokers: [...brokers],
    logLevel: logLevel.NOTHING,
    ...(tls ? { ssl: clientTlsOptions(tls) } : {}),
  }).admin();
  await admin.connect();
  try {
    const deadline = Date.now() + REPLICATION_TIMEOUT_MS;
    while (!(await fullyReplicated(admin).catch(() => false))) {
      if (Date.now() > deadline) {
        throw new Error(
          `kafka: replicas not back in sync ${REPLICATION_TIMEOUT_MS / 1000} s after the restart`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } finally {
    await admin.disconnect();
  }
}

async function fullyReplicated(admin: Admin): Promise<boolean> {
  const metadata = await admin.fetchTopicMetadata();
  return metadata.topics.every((topic) =>
    topic.partitions.every((p) => p.leader >= 0 && p.isr.length === p.replicas.length),
  );
}
