import { randomUUID } from 'node:crypto';
import type { Admin, Kafka } from 'kafkajs';
import { Registry } from 'prom-client';
import { testKafka } from '@sotto/testing';
import type { RelayEnv } from '../env';
import { consumerGroupLag, measureConsumerGroupLag, RoutingMetrics } from './routing-metrics';

describe('consumer group lag', () => {
  it('counts from the committed offset to the end of each partition, all partitions together', () => {
    expect(
      consumerGroupLag(
        [
          { partition: 0, offset: '90' },
          { partition: 1, offset: '500' },
        ],
        [
          { partition: 0, low: '0', high: '100' },
          { partition: 1, low: '0', high: '500' },
        ],
      ),
    ).toBe(10);
  });

  it('counts a partition the group never committed from its first kept record', () => {
    expect(
      consumerGroupLag([{ partition: 0, offset: '-1' }], [{ partition: 0, low: '40', high: '100' }]),
    ).toBe(60);
    expect(consumerGroupLag([], [{ partition: 3, low: '0', high: '7' }])).toBe(7);
    // A committed offset the retention has since passed counts from what is still there.
    expect(consumerGroupLag([{ partition: 0, offset: '5' }], [{ partition: 0, low: '50', high: '80' }])).toBe(
      30,
    );
  });

  it('is never negative, and exact past 2^53 offsets', () => {
    expect(consumerGroupLag([{ partition: 0, offset: '12' }], [{ partition: 0, low: '0', high: '10' }])).toBe(
      0,
    );
    expect(
      consumerGroupLag(
        [{ partition: 0, offset: '9007199254740993' }],
        [{ partition: 0, low: '0', high: '9007199254741000' }],
      ),
    ).toBe(7);
  });
});

describe('routing metrics', () => {
  it('times each routed envelope from its acceptance, in seconds', async () => {
    const registry = new Registry();
    const env = { KAFKA_CONSUMER_GROUP: 'unused' } as RelayEnv;
    const metrics = new RoutingMetrics(registry, testKafka({ clientId: 'routing-metrics-test' }), env);
    metrics.routed([1_000, 1_900, 2_000], 2_000);
    const text = await registry.getSingleMetricAsString('sotto_relay_routing_delay_seconds');
    expect(text).toContain('sotto_relay_routing_delay_seconds_count 3');
    expect(text).toContain('sotto_relay_routing_delay_seconds_sum 1.1');
    expect(text).toContain('sotto_relay_routing_delay_seconds_bucket{le="0.1"} 2');
  });
});

describe('consumer group lag against Kafka', () => {
  let kafka: Kafka;
  let admin: Admin;
  const group = `lag-test-${randomUUID()}`;
  const topic = `lag-test-${randomUUID()}`;

  beforeAll(async () => {
    kafka = testKafka({ clientId: 'routing-metrics-test' });
    admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      topics: [{ topic, numPartitions: 2, replicationFactor: 1 }],
      waitForLeaders: true,
    });
    const producer = kafka.producer();
    await producer.connect();
    const records = (partition: number, count: number) =>
      Array.from({ length: count }, (_, i) => ({ partition, value: `${partition}-${i}` }));
    await producer.send({ topic, messages: [...records(0, 5), ...records(1, 3)] });
    await producer.disconnect();
    // Committing is the first use of group offsets on a new broker: it waits for their topic's
    // coordinator, as a relay starting on a new cluster does.
    await admin.setOffsets({ groupId: group, topic, partitions: [{ partition: 0, offset: '2' }] });
  });

  afterAll(async () => {
    await admin.deleteTopics({ topics: [topic] });
    await admin.disconnect();
  });

  it('is what the group has not committed, partition by partition', async () => {
    // Partition 0 from its committed offset 2 of 5; partition 1, never committed, from its start.
    expect(await measureConsumerGroupLag(admin, group, topic)).toBe(3 + 3);
    // A group that has committed nothing is behind by everything.
    expect(await measureConsumerGroupLag(admin, `lag-test-${randomUUID()}`, topic)).toBe(8);
  });

  it("is served at each scrape as the relays' group lag, and follows their commits", async () => {
    /** The relay's metrics, reporting on this test's topic rather than the envelope log. */
    class OnTestTopic extends RoutingMetrics {
      protected override readonly topic = topic;
    }
    const registry = new Registry();
    const metrics = new OnTestTopic(registry, kafka, { KAFKA_CONSUMER_GROUP: group } as RelayEnv);
    const scrape = async (): Promise<string> =>
      registry.getSingleMetricAsString('sotto_relay_consumer_lag_messages');
    expect(await scrape()).toContain('sotto_relay_consumer_lag_messages 6');
    await admin.setOffsets({
      groupId: group,
      topic,
      partitions: [
        { partition: 0, offset: '5' },
        { partition: 1, offset: '3' },
      ],
    });
    expect(await scrape()).toContain('sotto_relay_consumer_lag_messages 0');
    await metrics.onApplicationShutdown();
  });
});
