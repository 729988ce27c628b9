import { randomUUID } from 'node:crypto';
import { Test, type TestingModule } from '@nestjs/testing';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { ReadinessModule } from '@sotto/platform/health';
import { startPrivateKafkaCluster, testKafka } from '@sotto/testing';
import { ensureTopic, KafkaModule, topicMinInsyncReplicas } from './index';

/** The platform's admin client on these brokers, with the retries services use. */
async function platformAdmin(brokers: readonly string[]): Promise<{ admin: Admin; module: TestingModule }> {
  const module = await Test.createTestingModule({
    imports: [ReadinessModule, KafkaModule.forRoot({ brokers, clientId: 'topics-spec' })],
  }).compile();
  return { admin: module.get<Admin>(KafkaModule.ADMIN), module };
}

describe('ensureTopic, refused', () => {
  const admin = testKafka({ clientId: 'topics-spec' }).admin();
  beforeAll(() => admin.connect());
  afterAll(() => admin.disconnect());

  it('fails at once on an invalid topic config, naming the topic and what Kafka said, and creates nothing', async () => {
    const topic = `topics-spec-${randomUUID()}`;
    const started = Date.now();
    await expect(
      ensureTopic(admin, {
        topic,
        numPartitions: 1,
        replicationFactor: 1,
        configs: { 'cleanup.policy': 'sometimes' },
      }),
    ).rejects.toThrow(
      `cannot create or check topic ${topic} (partitions 1, replication factor 1, cleanup.policy=sometimes): ` +
        'Configuration is invalid (INVALID_CONFIG)',
    );
    // Not tried again for a minute: an invalid config stays invalid.
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await admin.listTopics()).not.toContain(topic);
  });

  it('fails at once when asked for more replicas than there are brokers', async () => {
    const topic = `topics-spec-${randomUUID()}`;
    const brokers = (await admin.describeCluster()).brokers.length;
    const started = Date.now();
    await expect(
      ensureTopic(admin, { topic, numPartitions: 2, replicationFactor: brokers + 1 }),
    ).rejects.toThrow(
      `cannot create or check topic ${topic} (partitions 2, replication factor ${brokers + 1}): ` +
        'Replication-factor is invalid (INVALID_REPLICATION_FACTOR)',
    );
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await admin.listTopics()).not.toContain(topic);
  });
});

describe('ensureTopic on a 3-broker cluster', () => {
  let cluster: Awaited<ReturnType<typeof startPrivateKafkaCluster>> | undefined;
  let admin: Admin;
  let module: TestingModule | undefined;

  beforeAll(async () => {
    cluster = await startPrivateKafkaCluster();
    ({ admin, module } = await platformAdmin(cluster.brokers));
  }, 300_000);
  afterAll(async () => {
    await module?.close();
    await cluster?.stop();
  }, 120_000);

  /**
   * The partitions of a topic as a client that does not retry sees them through these brokers, or
   * the error code the brokers answered instead.
   */
  async function partitionsOrError(
    topic: string,
    brokers: readonly string[],
  ): Promise<{ leader: number }[] | string> {
    const probe = new Kafka({
      clientId: 'topics-spec-probe',
      brokers: [...brokers],
      logLevel: logLevel.NOTHING,
      retry: { retries: 0 },
    }).admin();
    try {
      await probe.connect();
      return (await probe.fetchTopicMetadata({ topics: [topic] })).topics[0]?.partitions ?? [];
    } catch (error) {
      // kafkajs wraps what it gave up on (retries: 0) in KafkaJSNumberOfRetriesExceeded.
      const { type, cause } = error as { type?: string; cause?: { type?: string } };
      return type ?? cause?.type ?? String(error);
    } finally {
      await probe.disconnect();
    }
  }

  it('creates a topic replicated on every broker, and returns once every partition has a leader', async () => {
    const topic = `topics-spec-${randomUUID()}`;
    // What it answers, not a request of the caller's own right after: that may reach a broker that
    // has not learned of the topic yet (UNKNOWN_TOPIC_OR_PARTITION).
    const partitions = await ensureTopic(admin, {
      topic,
      numPartitions: 6,
      replicationFactor: 3,
      minInsyncReplicas: 2,
    });
    expect(partitions).toHaveLength(6);
    for (const partition of partitions) {
      expect(partition.leader).toBeGreaterThan(0);
      expect(partition.replicas).toHaveLength(3);
    }
    expect(await topicMinInsyncReplicas(admin, topic)).toBe(2);
  });

  it('waits while a partition has no leader: gives up after its patience, saying why, or returns once the broker is back', async () => {
    if (cluster === undefined) throw new Error('the cluster did not start');
    // One replica per partition: the partitions of a broker that is down have no leader.
    const spec = { topic: `topics-spec-${randomUUID()}`, numPartitions: 3, replicationFactor: 1 };
    const partitions = await ensureTopic(admin, spec);
    const victim = cluster.nodes.find((node) => node.id === partitions[0]?.leader);
    if (victim === undefined) throw new Error('no broker leads partition 0');
    await victim.kill();
    const running = cluster.brokers.filter((broker) => broker !== victim.broker);
    // The controller fences the broker after its session timeout; its partitions lose their leader.
    const deadline = Date.now() + 60_000;
    let seen = await partitionsOrError(spec.topic, running);
    while (seen !== 'LEADER_NOT_AVAILABLE' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      seen = await partitionsOrError(spec.topic, running);
    }
    expect(seen).toBe('LEADER_NOT_AVAILABLE');

    await expect(ensureTopic(admin, spec, {}, 1_000)).rejects.toThrow(
      new RegExp(
        `^topic ${spec.topic} is not ready after \\d+ s of trying: There is no leader for this topic-partition .*\\(LEADER_NOT_AVAILABLE\\)$`,
      ),
    );

    // With patience enough, it outlasts kafkajs' own retries and returns once the broker is back,
    // every partition led.
    const ensured = ensureTopic(admin, spec, {}, 600_000);
    await victim.start();
    const whenReturned = await ensured;
    expect(whenReturned).toHaveLength(3);
    for (const partition of whenReturned) expect(partition.leader).toBeGreaterThan(0);
  }, 600_000);
});
