import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import type { Admin, Kafka } from 'kafkajs';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { envelopesTopic } from '@sotto/contracts';
import { KAFKA } from '@sotto/platform/kafka';
import { RELAY_ENV, type RelayEnv } from '../env';

/** A partition's committed offset (as Kafka's admin API gives it: "-1" when the group has none). */
export interface CommittedOffset {
  readonly partition: number;
  readonly offset: string;
}

/** A partition's first and next offsets. */
export interface PartitionEnds {
  readonly partition: number;
  readonly low: string;
  readonly high: string;
}

/**
 * Records the group has still to route, over every partition: from its committed offset to the
 * end, or from the first record still kept where it has committed nothing (a new group starts at
 * the beginning).
 */
export function consumerGroupLag(
  committed: readonly CommittedOffset[],
  ends: readonly PartitionEnds[],
): number {
  const offsets = new Map(committed.map((entry) => [entry.partition, BigInt(entry.offset)]));
  let lag = 0n;
  for (const { partition, low, high } of ends) {
    const from = offsets.get(partition) ?? -1n;
    const start = from < BigInt(low) ? BigInt(low) : from;
    if (BigInt(high) > start) lag += BigInt(high) - start;
  }
  return Number(lag);
}

/** The lag of `groupId` on `topic`, asked of Kafka now. */
export async function measureConsumerGroupLag(admin: Admin, groupId: string, topic: string): Promise<number> {
  const [committed, ends] = await Promise.all([
    admin.fetchOffsets({ groupId, topics: [topic] }),
    admin.fetchTopicOffsets(topic),
  ]);
  return consumerGroupLag(committed.find((entry) => entry.topic === topic)?.partitions ?? [], ends);
}

/** Seconds, on the relay's clock, from a Send accepted to its envelope in the mailbox. */
export const ROUTING_DELAY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/**
 * What SREs watch on routing: how far the consumer group is behind the envelope log (the figure
 * KEDA scales the relay on), and how long an accepted envelope takes to reach its mailbox.
 */
@Injectable()
export class RoutingMetrics implements OnApplicationShutdown {
  private readonly logger = new Logger(RoutingMetrics.name);
  private readonly delay: Histogram;
  private readonly durabilityWait: Histogram;
  private readonly notDurable: Counter;
  private admin: Admin | undefined;
  /** The topic whose lag is reported: the envelope log. */
  protected readonly topic: string = envelopesTopic.TOPIC;

  /** The service's registry, which runService serves on /metrics. */
  constructor(
    registry: Registry,
    @Inject(KAFKA) private readonly kafka: Kafka,
    @Inject(RELAY_ENV) private readonly env: RelayEnv,
  ) {
    const registers = [registry];
    this.delay = new Histogram({
      name: 'sotto_relay_routing_delay_seconds',
      help: 'Seconds from a Send accepted (its server timestamp) to its envelope written into the mailbox.',
      buckets: ROUTING_DELAY_BUCKETS,
      registers,
    });
    this.durabilityWait = new Histogram({
      name: 'sotto_relay_mailbox_durability_wait_seconds',
      help: 'Seconds a routed batch waited for its mailbox writes to be durable by MAILBOX_DURABILITY (WAIT/WAITAOF on each master written to) before its offsets could be committed.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.notDurable = new Counter({
      name: 'sotto_relay_mailbox_not_durable_batches_total',
      help: 'Routed batches whose mailbox writes were not durable by MAILBOX_DURABILITY in time (a replica down or behind): their offsets were not committed and they were routed again.',
      registers,
    });
    const lag = (): Promise<number> => this.lag();
    const logger = this.logger;
    new Gauge({
      name: 'sotto_relay_consumer_lag_messages',
      help: "Envelopes in sotto.envelopes.v1 the relays' consumer group has not yet routed, all partitions together (asked of Kafka at each scrape; every relay pod reports the whole group).",
      registers,
      async collect() {
        try {
          this.set(await lag());
        } catch (error) {
          // The scrape still answers; the series keeps its last value.
          logger.warn(`could not measure the consumer group's lag: ${(error as Error).message}`);
        }
      },
    });
  }

  /** Envelopes written into their mailboxes, with when each was accepted. */
  routed(acceptedAtMs: readonly number[], nowMs = Date.now()): void {
    for (const at of acceptedAtMs) this.delay.observe(Math.max(0, nowMs - at) / 1000);
  }

  /** A batch's wait for durable mailbox writes, and whether they were durable in time. */
  durabilityWaited(seconds: number, durable: boolean): void {
    this.durabilityWait.observe(seconds);
    if (!durable) this.notDurable.inc();
  }

  private async lag(): Promise<number> {
    if (this.admin === undefined) {
      const admin = this.kafka.admin();
      await admin.connect();
      this.admin = admin;
    }
    return measureConsumerGroupLag(this.admin, this.env.KAFKA_CONSUMER_GROUP, this.topic);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.admin?.disconnect();
  }
}
