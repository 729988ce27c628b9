import { ConfigResourceTypes, type Admin } from 'kafkajs';

export interface TopicSpec {
  readonly topic: string;
  readonly numPartitions: number;
  readonly replicationFactor: number;
  /**
   * Replicas that must hold a record before an acks=all write succeeds; set on the topic when it
   * is created, and an existing topic with fewer is refused (see ensureTopic).
   */
  readonly minInsyncReplicas?: number;
  readonly configs?: Readonly<Record<string, string>>;
}

/** What a topic's replication is unless configured: three copies where there are three brokers, two of them for a write. */
export function defaultReplication(
  brokers: number,
  configured: {
    readonly replicationFactor?: number | undefined;
    readonly minInsyncReplicas?: number | undefined;
  } = {},
): { replicationFactor: number; minInsyncReplicas: number } {
  const replicationFactor = configured.replicationFactor ?? Math.max(1, Math.min(3, brokers));
  const minInsyncReplicas = configured.minInsyncReplicas ?? (replicationFactor > 1 ? 2 : 1);
  return { replicationFactor, minInsyncReplicas };
}

/** The names of the settings behind a TopicSpec, for error messages. */
export interface TopicSettingNames {
  readonly minInsyncReplicas?: string;
}

/**
 * Creates a topic if it does not exist. Brokers run with topic auto-creation
 * off, so partitions and replication are always chosen, never defaulted. With
 * `minInsyncReplicas`, the topic's effective min.insync.replicas (its own or
 * the brokers' default) is read back, and a topic that lets acks=all writes
 * succeed on fewer replicas is refused: acks=all is only as strong as it.
 */
export async function ensureTopic(
  admin: Admin,
  spec: TopicSpec,
  names: TopicSettingNames = {},
): Promise<void> {
  // A topic just created reaches every broker's metadata a moment later; a broker asked before
  // then answers with a retriable error (UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE). Such
  // an error is tried again, a little later, for up to ENSURE_TOPIC_PATIENCE_MS in all.
  const deadline = Date.now() + ENSURE_TOPIC_PATIENCE_MS;
  for (;;) {
    try {
      await ensureTopicOnce(admin, spec, names);
      return;
    } catch (error) {
      const retriable = (error as { retriable?: unknown }).retriable === true;
      if (!retriable || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

/** How long ensureTopic keeps trying while Kafka answers with retriable errors. */
const ENSURE_TOPIC_PATIENCE_MS = 60_000;

async function ensureTopicOnce(admin: Admin, spec: TopicSpec, names: TopicSettingNames): Promise<void> {
  const existing = await admin.listTopics();
  if (!existing.includes(spec.topic)) {
    const configs = {
      ...(spec.minInsyncReplicas === undefined
        ? {}
        : { 'min.insync.replicas': String(spec.minInsyncReplicas) }),
      ...spec.configs,
    };
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        {
          topic: spec.topic,
          numPartitions: spec.numPartitions,
          replicationFactor: spec.replicationFactor,
          configEntries: Object.entries(configs).map(([name, value]) => ({ name, value })),
        },
      ],
    });
  }
  // Every partition has a leader (a topic created by an earlier, interrupted try may not yet).
  const metadata = await admin.fetchTopicMetadata({ topics: [spec.topic] });
  const leaderless = (metadata.topics[0]?.partitions ?? []).filter((partition) => partition.leader < 0);
  if (leaderless.length > 0) {
    throw Object.assign(new Error(`${spec.topic}: ${leaderless.length} partitions have no leader yet`), {
      retriable: true,
    });
  }
  if (spec.minInsyncReplicas === undefined) return;
  const actual = await topicMinInsyncReplicas(admin, spec.topic);
  if (actual < spec.minInsyncReplicas) {
    const setting = names.minInsyncReplicas ?? 'minInsyncReplicas';
    throw new Error(
      `${spec.topic} has min.insync.replicas=${actual}, fewer than the ${spec.minInsyncReplicas} that ${setting} asks for: ` +
        `an acks=all write would count as safe with ${actual} ${actual === 1 ? 'copy' : 'copies'}. ` +
        `Raise the topic's (kafka-configs.sh --alter --entity-type topics --entity-name ${spec.topic} --add-config min.insync.replicas=${spec.minInsyncReplicas}) or lower ${setting}`,
    );
  }
}

/** The topic's effective min.insync.replicas: its own, or else the brokers'. */
export async function topicMinInsyncReplicas(admin: Admin, topic: string): Promise<number> {
  const described = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['min.insync.replicas'] }],
  });
  const value = described.resources[0]?.configEntries.find(
    (entry) => entry.configName === 'min.insync.replicas',
  )?.configValue;
  const parsed = Number(value);
  if (value === undefined || !Number.isInteger(parsed)) {
    throw new Error(`${topic}: the brokers did not say its min.insync.replicas`);
  }
  return parsed;
}
