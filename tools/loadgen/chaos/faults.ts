/**
 * What a fault run kills. Each fault SIGKILLs one instance of something the
 * message path runs on, like a power cut, then brings it back as an
 * orchestrator would and says when it is serving again.
 */
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { clientTlsOptions, type RunningKafkaCluster, type RunningRedisCluster } from '@sotto/local-infra';
import type { Platform, ServiceName } from '@sotto/stack';

export interface Fault {
  /** What kind of thing it kills: 'message-relay', 'gateway', 'kafka-broker', 'redis-master'. */
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

/** How long a Redis Cluster may take to promote a replica, and then to take its old master back in sync. */
const REDIS_FAILOVER_TIMEOUT_MS = 60_000;

/**
 * A master of a Redis Cluster at a time, each kill the next one serving slots: SIGKILLed; its
 * replica is promoted once the others count it failed (cluster-node-timeout, 2 s locally); then it
 * is started again on its ports and data and rejoins as the new master's replica. Recovered once
 * every node says cluster_state:ok with all 16384 slots served and every replica in sync, so the
 * next kill cannot take a slot's only copy.
 */
export function redisMasterFault(cluster: RunningRedisCluster): Fault {
  let next = 0;
  let killed: string | undefined;
  return {
    kind: 'redis-master',
    kill: async () => {
      const masters = await cluster.masters();
      const victim = masters[next++ % masters.length];
      if (victim === undefined) throw new Error('the Redis Cluster has no master serving slots');
      const pid = cluster.pids[cluster.nodes.indexOf(victim)];
      await cluster.kill(victim);
      killed = victim;
      return `redis master ${victim} (pid ${pid ?? '?'})`;
    },
    recover: async () => {
      if (killed === undefined) return;
      // Its replica takes its slots first: the cluster is whole again without it.
      await cluster.waitHealthy(REDIS_FAILOVER_TIMEOUT_MS);
      await cluster.restart(killed);
      killed = undefined;
      await cluster.waitHealthy(REDIS_FAILOVER_TIMEOUT_MS);
    },
  };
}
