import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { Partitioners, type Admin, type Kafka, type PartitionMetadata, type Producer } from 'kafkajs';
import { Registry } from 'prom-client';
import { envelopesTopic, multiRecipientTopic } from '@sotto/contracts';
import type { Envelope } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import type { MultiRecipientRecord } from '@sotto/contracts/generated/sotto/relay/v1/relay';
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

/** A record on its way to Kafka: an envelope, or a multi-recipient send whole. */
export interface LogRecord {
  readonly topic: string;
  readonly key: Buffer;
  readonly value: Buffer;
}

/**
 * A multi-recipient send as its one Kafka record, encoded once: the caller
 * checks the encoded size against the record limit and appends these bytes.
 */
export function multiRecipientLogRecord(record: MultiRecipientRecord): LogRecord {
  return {
    topic: multiRecipientTopic.TOPIC,
    key: multiRecipientTopic.encodeKey(record.recipients.map((recipient) => recipient.accountId)),
    value: multiRecipientTopic.encodeValue(record),
  };
}

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
  private readonly commits: GroupCommit<LogRecord>;
  /** The partitioner kafkajs would use, applied here so that each record names its partition. */
  private readonly partitioner = Partitioners.DefaultPartitioner();
  /** Each topic's partitions, as ensureTopic found them. */
  private readonly partitions = new Map<string, PartitionMetadata[]>();

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
    this.commits = new GroupCommit((records) => this.produce(records), {
      maxItems: MAX_ENVELOPES_PER_PRODUCE,
      // Under the broker's default message.max.bytes (1 MiB) for a partition's batch, whatever
      // the keys; one Send larger than this still goes, alone.
      maxBytes: MAX_BYTES_PER_PRODUCE,
      sizeOf: (record) => record.value.length + ENVELOPE_OVERHEAD_BYTES,
    });
  }

  async onModuleInit(): Promise<void> {
    const brokers = (await this.admin.describeCluster()).brokers.length;
    // The partitions ensureTopic saw, each with a leader: asked again at once, another broker may
    // not know a topic just created. Multi-recipient sends have a topic of their own, made alike.
    for (const topic of [envelopesTopic.TOPIC, multiRecipientTopic.TOPIC]) {
      const partitions = await ensureTopic(
        this.admin,
        {
          topic,
          numPartitions: this.env.ENVELOPE_TOPIC_PARTITIONS,
          ...envelopeTopicReplication(this.env, brokers),
        },
        { minInsyncReplicas: 'ENVELOPE_TOPIC_MIN_INSYNC_REPLICAS' },
      );
      if (partitions.length === 0) throw new Error(`${topic} has no partitions`);
      this.partitions.set(topic, partitions);
    }
    await this.producer.connect();
    this.readiness.register('kafka-topic', async () => {
      const metadata = await this.admin.fetchTopicMetadata({
        topics: [envelopesTopic.TOPIC, multiRecipientTopic.TOPIC],
      });
      for (const { name, partitions } of metadata.topics) {
        if (partitions.some((partition) => partition.leader < 0)) {
          throw new Error(`${name} has partitions without a leader`);
        }
      }
    });
  }

  /** Resolves once Kafka has acknowledged every envelope. */
  append(envelopes: readonly Envelope[]): Promise<void> {
    return this.commits.add(
      envelopes.map((envelope) => ({
        topic: envelopesTopic.TOPIC,
        key: envelopesTopic.encodeKey(envelope.destinationAccountId),
        value: envelopesTopic.encodeValue(envelope),
      })),
    );
  }

  /**
   * Resolves once Kafka has acknowledged the record (from multiRecipientLogRecord):
   * every copy of the send at once.
   */
  appendMultiRecipient(record: LogRecord): Promise<void> {
    return this.commits.add([record]);
  }

  /**
   * Each record names its partition (the one its key hashes to), and what
   * kafkajs resolves without an answer for is produced again: a send it
   * retried across a broker's death can skip whole partitions (see
   * unacknowledged). A record it never wrote cannot be written twice, and
   * one it wrote but was not told of is deduplicated by the broker.
   */
  private async produce(records: readonly LogRecord[]): Promise<void> {
    // One topic after the other: the idempotent producer keeps one request in flight anyway.
    for (const topic of new Set(records.map((record) => record.topic))) {
      await this.produceTo(
        topic,
        records.filter((record) => record.topic === topic),
      );
    }
  }

  private async produceTo(topic: string, records: readonly LogRecord[]): Promise<void> {
    const partitionMetadata = this.partitions.get(topic) ?? [];
    let pending = records.map(({ key, value }) => {
      const message = { key, value };
      return { ...message, partition: this.partitioner({ topic, partitionMetadata, message }) };
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
