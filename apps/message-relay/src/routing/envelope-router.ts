import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { Consumer, EachBatchPayload, Kafka } from 'kafkajs';
import { envelopesTopic, multiRecipientTopic } from '@sotto/contracts';
import type { Envelope } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import { SameTurnBatch } from '@sotto/platform/batching';
import { KAFKA, countKafkaRequests } from '@sotto/platform/kafka';
import type { DurabilityOutcome } from '@sotto/platform/redis';
import { Registry } from 'prom-client';
import { RELAY_ENV, type RelayEnv } from '../env';
import { MailboxStore, type DeviceAddress } from '../mailbox/mailbox.store';
import { FaultInjection } from './fault-injection';
import { MailPushes, type RoutedEnvelope } from './mail-pushes';
import { copiesOf } from './multi-recipient-copies';
import { OffsetCommits } from './offset-commits';
import { RoutingMetrics } from './routing-metrics';

const DURABLE: DurabilityOutcome = { durable: true, commands: {}, shortfalls: [] };

/** An envelope read from Kafka, on its way into its device's mailbox. */
interface RoutingItem {
  readonly device: DeviceAddress;
  readonly guid: string;
  /** The record's value, as the mailbox keeps it. */
  readonly envelope: Buffer;
  readonly decoded: Envelope;
  readonly arrivedAtMs: number;
}

/** `envelope` on its way into its mailbox, which keeps it as `value`. */
function routingItem(envelope: Envelope, value: Buffer): RoutingItem {
  return {
    device: { accountId: envelope.destinationAccountId, deviceId: envelope.destinationDeviceId },
    guid: envelope.guid,
    envelope: value,
    decoded: envelope,
    // It arrived when the relay accepted it; its 30 days run from then.
    arrivedAtMs: Number(envelope.serverTimestampMs),
  };
}

/**
 * Reads sotto.envelopes.v1 and writes each envelope into its device's
 * mailbox, then pushes it to the gateway holding the device's stream. A
 * record of sotto.multi-recipient.v1 is split first, into a sealed envelope
 * per recipient device, and its batch committed only once every copy is in. Offsets are committed only after
 * the mailbox writes, so a crash anywhere re-reads the batch: delivery is at
 * least once, and the mailbox script makes each retry a no-op per GUID.
 */
@Injectable()
export class EnvelopeRouter implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(EnvelopeRouter.name);
  private readonly consumer: Consumer;
  private readonly partitions: number;
  private readonly commits: OffsetCommits;
  /** The partitions of one fetch are routed side by side; their mailbox writes go together. */
  private readonly routing = new SameTurnBatch((items: RoutingItem[]) => this.routeTogether(items));

  constructor(
    @Inject(KAFKA) kafka: Kafka,
    @Inject(RELAY_ENV) env: RelayEnv,
    private readonly mailboxes: MailboxStore,
    private readonly pushes: MailPushes,
    private readonly faults: FaultInjection,
    private readonly metrics: RoutingMetrics,
    registry: Registry,
  ) {
    // Both topics have ENVELOPE_TOPIC_PARTITIONS partitions.
    this.partitions = 2 * env.ENVELOPE_TOPIC_PARTITIONS;
    this.consumer = kafka.consumer({
      groupId: env.KAFKA_CONSUMER_GROUP,
      sessionTimeout: env.KAFKA_SESSION_TIMEOUT_MS,
      allowAutoTopicCreation: false,
      minBytes: env.KAFKA_FETCH_MIN_BYTES,
      maxWaitTimeInMs: env.KAFKA_FETCH_MAX_WAIT_MS,
    });
    countKafkaRequests({ consumer: this.consumer }, registry);
    this.commits = new OffsetCommits(
      (offsets) => this.consumer.commitOffsets(offsets),
      env.KAFKA_COMMIT_INTERVAL_MS,
      (error) =>
        this.logger.warn(`could not commit offsets (they are read again): ${(error as Error).message}`),
    );
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.consumer.connect();
    // A new group starts at the beginning: nothing logged before it existed is skipped.
    await this.consumer.subscribe({
      topics: [envelopesTopic.TOPIC, multiRecipientTopic.TOPIC],
      fromBeginning: true,
    });
    // A consumer that stopped for good (kafkajs restarts it after a retriable crash) would leave
    // this relay answering Sends and routing nothing: it stops the relay, to be started again.
    this.consumer.on(this.consumer.events.CRASH, ({ payload }) => {
      if (!payload.restart) this.stopRelay(payload.error);
    });
    // Not awaited: joining the group can wait out a crashed relay's session (KAFKA_SESSION_TIMEOUT_MS),
    // and Sends need only the producer, so they are served meanwhile; routing starts once the group
    // has assigned this relay its partitions.
    this.consumer
      .run({
        // Partitions are routed side by side: one busy partition does not hold up the devices of the others
        // (an account's envelopes share a partition, so each mailbox still fills in order).
        partitionsConsumedConcurrently: this.partitions,
        autoCommit: false,
        eachBatchAutoResolve: false,
        eachBatch: (payload) => this.route(payload),
      })
      .catch((error: unknown) => this.stopRelay(error));
  }

  private stopRelay(error: unknown): void {
    this.logger.error(
      `routing stopped for good, so the relay stops: ${error instanceof Error ? error.message : String(error)}`,
    );
    process.kill(process.pid, 'SIGTERM');
  }

  private async route(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    if (!payload.isRunning() || payload.isStale() || batch.messages.length === 0) return;
    const items: RoutingItem[] = [];
    for (const message of batch.messages) {
      if (!message.value) continue;
      try {
        if (batch.topic === multiRecipientTopic.TOPIC) {
          for (const copy of copiesOf(multiRecipientTopic.decodeValue(message.value))) {
            items.push(routingItem(copy, envelopesTopic.encodeValue(copy)));
          }
        } else {
          items.push(routingItem(envelopesTopic.decodeValue(message.value), message.value));
        }
      } catch (error) {
        // A record that is not an envelope can never be delivered; retrying it would stall the partition.
        this.logger.error(
          `skipping undecodable record at ${batch.partition}/${message.offset}: ${(error as Error).message}`,
        );
      }
    }

    // A batch of undecodable records alone has nothing to write and is committed at once.
    const [durability = DURABLE] = await this.routing.add(items);
    if (!durability.durable) {
      this.logger.warn(
        `mailbox writes of ${batch.partition}/${batch.firstOffset()}..${batch.lastOffset()} not durable in time (${durability.shortfalls
          .map((s) => `${s.node}: ${s.error ?? `${s.replicas} replicas`}`)
          .join('; ')}); routing them again`,
      );
      return;
    }

    const last = batch.messages[batch.messages.length - 1].offset;
    payload.resolveOffset(last);
    this.commits.routed({
      topic: batch.topic,
      partition: batch.partition,
      offset: (BigInt(last) + 1n).toString(),
    });
    await payload.heartbeat();
  }

  /**
   * Writes the envelopes of every partition fetched together into their
   * mailboxes (one round trip per Redis master), pushes them to the gateways
   * holding their devices, and waits until the writes are durable by the
   * policy (MAILBOX_DURABILITY). Kafka forgets a batch once its offset is
   * committed, so the mailboxes must keep it first: a master that died now,
   * before replicating, would lose it. Short of the policy, no partition's
   * batch is resolved or committed, and the next fetch reads them again.
   */
  private async routeTogether(items: RoutingItem[]): Promise<DurabilityOutcome[]> {
    const guids = items.map((item) => item.guid);
    await this.faults.at('crash-before-mailbox', guids);
    const sequences = await this.mailboxes.insertMany(items);
    this.metrics.routed(items.map((item) => item.arrivedAtMs));
    // The mail is in the mailboxes: gateways may push it while the offsets are committed. (A crash
    // before the commit re-reads the batch and pushes it again: a gateway pushes a sequence once.)
    const pushed = this.push(
      items.map((item, index) => ({
        device: item.device,
        sequence: sequences[index] ?? 0,
        envelope: item.decoded,
      })),
    );
    try {
      const waitedFrom = performance.now();
      const durability = await this.mailboxes.confirmDurable(items.map((item) => item.device));
      this.metrics.durabilityWaited((performance.now() - waitedFrom) / 1000, durability.durable);
      if (durability.durable) await this.faults.at('crash-before-commit', guids);
      return items.map(() => durability);
    } finally {
      await pushed;
    }
  }

  /** Best effort: a device whose gateway misses the push still gets its mail on its next drain. */
  private async push(routed: RoutedEnvelope[]): Promise<void> {
    try {
      await this.pushes.push(routed);
    } catch (error) {
      this.logger.warn(`could not push new mail to gateways: ${(error as Error).message}`);
    }
  }

  async onApplicationShutdown(): Promise<void> {
    // The batch being routed finishes first; then what it and the others routed is committed.
    await this.consumer.stop();
    await this.commits.flush();
    await this.consumer.disconnect();
  }
}
