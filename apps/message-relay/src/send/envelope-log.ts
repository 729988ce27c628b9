import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { Partitioners, type Admin, type Kafka, type PartitionMetadata, type Producer } from 'kafkajs';
import { Registry } from 'prom-client';
import { envelopesTopic } from '@sotto/contracts';
import type { Envelope } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import { GroupCommit } from '@sotto/platform/batching';
import { Readiness } from '@sotto/platform/health';
import { KAFKA, KafkaModule, countKafkaRequests, ensureTopic } from '@sotto/platform/kafka';
import { RELAY_ENV, type RelayEnv } from '../env';
import { unacknowledged } from './unacknowledged';
import { envelopeTopicReplication } from './topic-replication';

/** Most envelopes in one produce request. */
const MAX_ENVELOPES_PER_PRODUCE = 2_000;
/** Most bytes of envelopes in one produce request. */
const MAX_BYTES_PER_PRODUCE = 900 * 1024;
/** An envelope's record beyond its content: ids, timestamps, the key. */
const ENVELOPE_OVERHEAD_BYTES = 160;
/** Produces of what kafkajs left unwritten before a Send fails rather than answers. */
const MAX_PRODUCE_ATTEMPTS = 3;

/**
 * The durable side of Send: envelopes are appended to sotto.envelopes.v1,
 * keyed by recipient account, and count as accepted only once every in-sync
 * replica has them (acks=all) through an idempotent producer, so a retried
 * produce never writes a record twice. The idempotent producer keeps one
 * request in flight, so the Sends that arrive while one is in flight are
 * group-committed: they go to Kafka together in the next request.
 */
@Injectable()
export class EnvelopeLog implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(EnvelopeLog.name);
  private readonly producer: Producer;
  private readonly commits: GroupCommit<Envelope>;
  /** The partitioner kafkajs would use, applied here so that each record names its partition. */
  private readonly partitioner = Partitioners.DefaultPartitioner();
  private partitions: PartitionMetadata[] = [];

  constructor(
    @Inject(KAFKA) kafka: Kafka,
    @Inject(KafkaModule.ADMIN) private readonly admin: Admin,
    @Inject(RELAY_ENV) private readonly env: RelayEnv,
    private readonly readiness: Readiness,
    registry: Registry,
  ) {
    this.producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    countKafkaRequests({ producer: this.producer }, registry);
    this.commits = new GroupCommit((envelopes) => this.produce(envelopes), {
      maxItems: MAX_ENVELOPES_PER_PRODUCE,
      // Under the broker's default message.max.bytes (1 MiB) for a partition's batch, whatever
      // the keys; one Send larger than this still goes, alone.
      maxBytes: MAX_BYTES_PER_PRODUCE,
      sizeOf: (envelope) => envelope.content.length + ENVELOPE_OVERHEAD_BYTES,
    });
  }

  async onModuleInit(): Promise<void> {
    const brokers = (await this.admin.describeCluster()).brokers.length;
    // The partitions ensureTopic saw, each with a leader: asked again at once, another broker may
    // not know a topic just created.
    this.partitions = await ensureTopic(
      this.admin,
      {
        topic: envelopesTopic.TOPIC,
        numPartitions: this.env.ENVELOPE_TOPIC_PARTITIONS,
        ...envelopeTopicReplication(this.env, brokers),
      },
      { minInsyncReplicas: 'ENVELOPE_TOPIC_MIN_INSYNC_REPLICAS' },
    );
    if (this.partitions.length === 0) throw new Error(`${envelopesTopic.TOPIC} has no partitions`);
    await this.producer.connect();
    this.readiness.register('kafka-topic', async () => {
      const metadata = await this.admin.fetchTopicMetadata({ topics: [envelopesTopic.TOPIC] });
      const partitions = metadata.topics[0]?.partitions ?? [];
      if (partitions.some((partition) => partition.leader < 0)) {
        throw new Error(`${envelopesTopic.TOPIC} has partitions without a leader`);
      }
    });
  }

  /** Resolves once Kafka has acknowledged every envelope. */
  append(envelopes: readonly Envelope[]): Promise<void> {
    return this.commits.add(envelopes);
  }

  /**
   * Each record names its partition (the one its key hashes to), and what
   * kafkajs resolves without an answer for is produced again: a send it
   * retried across a broker's death can skip whole partitions (see
   * unacknowledged). A record it never wrote cannot be written twice, and
   * one it wrote but was not told of is deduplicated by the broker.
   */
  private async produce(envelopes: readonly Envelope[]): Promise<void> {
    const topic = envelopesTopic.TOPIC;
    let pending = envelopes.map((envelope) => {
      const message = {
        key: envelopesTopic.encodeKey(envelope.destinationAccountId),
        value: envelopesTopic.encodeValue(envelope),
      };
      return {
        ...message,
        partition: this.partitioner({ topic, partitionMetadata: this.partitions, message }),
      };
    });
    for (let attempt = 1; ; attempt++) {
      const results = await this.producer.send({ topic, acks: -1, messages: pending });
      pending = unacknowledged(topic, pending, results);
      if (pending.length === 0) return;
      const partitions = [...new Set(pending.map((message) => message.partition))].join(', ');
      if (attempt >= MAX_PRODUCE_ATTEMPTS) {
        throw new Error(
          `Kafka did not acknowledge partitions ${partitions} of ${topic} after ${attempt} produces`,
        );
      }
      this.logger.warn(
        `Kafka answered without partitions ${partitions}; producing their ${pending.length} records again`,
      );
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await this.producer.disconnect();
  }
}
