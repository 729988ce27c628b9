import { ConfigResourceTypes, type Admin, type PartitionMetadata } from 'kafkajs';

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
 *
 * Returns once every partition has a leader. While Kafka answers retriably it
 * tries again, until `patienceMs` (60 s) have passed: a topic just created
 * reaches every broker's metadata a moment later (UNKNOWN_TOPIC_OR_PARTITION,
 * LEADER_NOT_AVAILABLE), and a partition whose replicas are all down has no
 * leader until one comes back. Anything else (an invalid config, more replicas
 * than brokers) fails at once, naming the topic and what Kafka said.
 *
 * Answers the partitions as its last check saw them, each with a leader. A
 * caller should use them rather than ask again: the next request may reach a
 * broker that has not learned of a topic just created.
 */
export async function ensureTopic(
  admin: Admin,
  spec: TopicSpec,
  names: TopicSettingNames = {},
  patienceMs: number = ENSURE_TOPIC_PATIENCE_MS,
): Promise<PartitionMetadata[]> {
  const started = Date.now();
  for (;;) {
    try {
      return await ensureTopicOnce(admin, spec, names);
    } catch (error) {
      if (!isKafkaError(error)) throw error;
      if (!isRetriable(error)) {
        throw new Error(`cannot create or check topic ${describeSpec(spec)}: ${kafkaSaid(error)}`, {
          cause: error,
        });
      }
      const waited = Date.now() - started;
      if (waited >= patienceMs) {
        throw new Error(
          `topic ${spec.topic} is not ready after ${Math.round(waited / 1000)} s of trying: ${kafkaSaid(error)}`,
          { cause: error },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

/** How long ensureTopic keeps trying while Kafka answers with retriable errors. */
const ENSURE_TOPIC_PATIENCE_MS = 60_000;

/** What kafkajs throws: its own error classes, some wrapping others. */
interface KafkaError extends Error {
  readonly retriable?: boolean;
  /** The broker's error code name (UNKNOWN_TOPIC_OR_PARTITION), for protocol errors. */
  readonly type?: string;
  /** One error per topic, for KafkaJSAggregateError (CreateTopics). */
  readonly errors?: readonly unknown[];
}

function isKafkaError(error: unknown): error is KafkaError {
  return error instanceof Error && (error.name.startsWith('KafkaJS') || 'retriable' in error);
}

/**
 * Whether trying again may succeed. kafkajs retries some errors itself and, when it gives up
 * (KafkaJSNumberOfRetriesExceeded), marks what it gave up on as not retriable; ensureTopic has more
 * patience than kafkajs' own retries, so it looks at the error it gave up on. A CreateTopics
 * refusal is retriable only if every topic's error is.
 */
function isRetriable(error: unknown): boolean {
  if (!isKafkaError(error)) return false;
  if (error.errors !== undefined) return error.errors.length > 0 && error.errors.every(isRetriable);
  if (error.name === 'KafkaJSNumberOfRetriesExceeded') return isRetriable(error.cause);
  return error.retriable === true;
}

/** What Kafka answered, in words and with the broker's error code: "Configuration is invalid (INVALID_CONFIG)". */
function kafkaSaid(error: unknown): string {
  if (!isKafkaError(error)) return String(error);
  if (error.errors !== undefined && error.errors.length > 0) return error.errors.map(kafkaSaid).join('; ');
  if (error.name === 'KafkaJSNumberOfRetriesExceeded' && error.cause !== undefined) {
    return kafkaSaid(error.cause);
  }
  return error.type === undefined ? error.message : `${error.message} (${error.type})`;
}

function describeSpec(spec: TopicSpec): string {
  const settings = [
    `partitions ${spec.numPartitions}`,
    `replication factor ${spec.replicationFactor}`,
    ...(spec.minInsyncReplicas === undefined ? [] : [`min.insync.replicas=${spec.minInsyncReplicas}`]),
    ...Object.entries(spec.configs ?? {}).map(([name, value]) => `${name}=${value}`),
  ];
  return `${spec.topic} (${settings.join(', ')})`;
}

async function ensureTopicOnce(
  admin: Admin,
  spec: TopicSpec,
  names: TopicSettingNames,
): Promise<PartitionMetadata[]> {
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
  const partitions = metadata.topics[0]?.partitions ?? [];
  const leaderless = partitions.filter((partition) => partition.leader < 0);
  if (partitions.length === 0 || leaderless.length > 0) {
    const missing =
      partitions.length === 0
        ? 'no partitions in the metadata yet'
        : `${leaderless.length} of its ${partitions.length} partitions have no leader yet`;
    throw Object.assign(new Error(missing), { retriable: true });
  }
  if (spec.minInsyncReplicas === undefined) return partitions;
  const actual = await topicMinInsyncReplicas(admin, spec.topic);
  if (actual < spec.minInsyncReplicas) {
    const setting = names.minInsyncReplicas ?? 'minInsyncReplicas';
    throw new Error(
      `${spec.topic} has min.insync.replicas=${actual}, fewer than the ${spec.minInsyncReplicas} that ${setting} asks for: ` +
        `an acks=all write would count as safe with ${actual} ${actual === 1 ? 'copy' : 'copies'}. ` +
        `Raise the topic's (kafka-configs.sh --alter --entity-type topics --entity-name ${spec.topic} --add-config min.insync.replicas=${spec.minInsyncReplicas}) or lower ${setting}`,
    );
  }
  return partitions;
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
