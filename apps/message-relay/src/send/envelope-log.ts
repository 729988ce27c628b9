import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { Partitioners, type Admin, type Kafka, type Producer } from 'kafkajs';
import { envelopesTopic } from '@sotto/contracts';
import type { Envelope } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import { Readiness } from '@sotto/platform/health';
import { KAFKA, KafkaModule, ensureTopic } from '@sotto/platform/kafka';
import { RELAY_ENV, type RelayEnv } from '../env';

/**
 * The durable side of Send: envelopes are appended to sotto.envelopes.v1,
 * keyed by recipient account, and count as accepted only once every in-sync
 * replica has them (acks=all) through an idempotent producer, so a retried
 * produce never writes a record twice.
 */
@Injectable()
export class EnvelopeLog implements OnModuleInit, OnApplicationShutdown {
  private readonly producer: Producer;

  constructor(
    @Inject(KAFKA) kafka: Kafka,
    @Inject(KafkaModule.ADMIN) private readonly admin: Admin,
    @Inject(RELAY_ENV) private readonly env: RelayEnv,
    private readonly readiness: Readiness,
  ) {
    this.producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
  }

  async onModuleInit(): Promise<void> {
    await ensureTopic(this.admin, {
      topic: envelopesTopic.TOPIC,
      numPartitions: this.env.ENVELOPE_TOPIC_PARTITIONS,
      replicationFactor: this.env.ENVELOPE_TOPIC_REPLICATION,
    });
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
  async append(envelopes: readonly Envelope[]): Promise<void> {
    await this.producer.send({
      topic: envelopesTopic.TOPIC,
      acks: -1,
      messages: envelopes.map((envelope) => ({
        key: envelopesTopic.encodeKey(envelope.destinationAccountId),
        value: envelopesTopic.encodeValue(envelope),
      })),
    });
  }

  async onApplicationShutdown(): Promise<void> {
    await this.producer.disconnect();
  }
}
