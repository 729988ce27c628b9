import { join } from 'node:path';
import { ConfigResourceTypes, Kafka, Partitioners, logLevel, type Admin } from 'kafkajs';
import { clientTlsOptions, prepareLocalPki } from '@sotto/platform/tls';
import { startKafkaCluster } from './kafka';
import type { RunningKafkaCluster } from './types';
import { isGone, tempDir } from './test-support';

const TOPIC = 'local-infra.cluster-test';

/** Every partition of TOPIC with all its replicas in sync. */
async function fullyInSync(admin: Admin): Promise<boolean> {
  const metadata = await admin.fetchTopicMetadata({ topics: [TOPIC] });
  const partitions = metadata.topics[0]?.partitions ?? [];
  return partitions.length > 0 && partitions.every((p) => p.isr.length === p.replicas.length);
}

/** Tries `check` until it answers true, for 120 s; failing, says what it last threw. */
async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  let lastError: unknown;
  while (
    !(await check().catch((error: unknown) => {
      lastError = error;
      return false;
    }))
  ) {
    if (Date.now() > deadline) {
      const said = lastError instanceof Error ? ` (last: ${lastError.message})` : '';
      throw new Error(`${what} within 120 s${said}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describe('startKafkaCluster', () => {
  const tmp = tempDir('kafka-cluster');
  afterAll(() => tmp.cleanup());

  it('runs three TLS brokers that keep accepting acks=all writes at min.insync.replicas=2 while one is killed, and take it back', async () => {
    const pki = await prepareLocalPki({ dir: join(tmp.dir, 'pki'), servers: ['kafka'], clients: ['client'] });
    const identity = (name: string) => ({ ca: pki.ca, ...pki.identities[name] });
    let cluster: RunningKafkaCluster | undefined;
    try {
      cluster = await startKafkaCluster({
        dataDir: join(tmp.dir, 'kafka'),
        tls: { ca: pki.ca, identity: identity('kafka') },
      });
      const { nodes, brokers } = cluster;
      expect(nodes.map((node) => node.id)).toEqual([1, 2, 3]);
      expect(brokers).toEqual(nodes.map((node) => node.broker));
      expect(new Set(brokers).size).toBe(3);
      for (const broker of brokers) expect(broker).toMatch(/^127\.0\.0\.1:\d+$/);

      const kafka = new Kafka({
        clientId: 'local-infra-cluster-spec',
        brokers,
        logLevel: logLevel.NOTHING,
        ssl: clientTlsOptions(identity('client')),
        // Long enough to ride out a failover: the killed broker's partitions get new leaders once it is fenced.
        retry: { initialRetryTime: 300, retries: 10, maxRetryTime: 5000 },
      });
      const admin = kafka.admin();
      await admin.connect();
      // Nothing in plaintext.
      const plaintext = new Kafka({
        clientId: 'local-infra-cluster-spec',
        brokers,
        logLevel: logLevel.NOTHING,
        retry: { retries: 0 },
        connectionTimeout: 3000,
      }).admin();
      await expect(plaintext.connect()).rejects.toThrow('Closed connection');
      try {
        expect((await admin.describeCluster()).brokers.map((b) => b.nodeId).sort()).toEqual([1, 2, 3]);
        // The brokers' defaults are a production cluster's: three replicas, two in sync for a write.
        // Not createTopics' waitForLeaders (on unless turned off): a broker the controller has not told
        // yet answers that it does not host the topic, which kafkajs does not retry there.
        await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 3 }], waitForLeaders: false });
        await until(async () => {
          const partitions =
            (await admin.fetchTopicMetadata({ topics: [TOPIC] })).topics[0]?.partitions ?? [];
          return partitions.length === 3 && partitions.every((partition) => partition.leader >= 0);
        }, 'every partition of the new topic did not get a leader');
        // DescribeConfigs goes to any broker, and one may still not know the topic the others lead.
        let minInsyncReplicas: string | undefined;
        await until(async () => {
          const configs = await admin.describeConfigs({
            includeSynonyms: false,
            resources: [
              { type: ConfigResourceTypes.TOPIC, name: TOPIC, configNames: ['min.insync.replicas'] },
            ],
          });
          minInsyncReplicas = configs.resources[0]?.configEntries[0]?.configValue;
          return true;
        }, 'no broker described the new topic');
        expect(minInsyncReplicas).toBe('2');
        const metadata = await admin.fetchTopicMetadata({ topics: [TOPIC] });
        for (const partition of metadata.topics[0]?.partitions ?? [])
          expect(partition.replicas).toHaveLength(3);

        const producer = kafka.producer({
          idempotent: true,
          maxInFlightRequests: 1,
          createPartitioner: Partitioners.DefaultPartitioner,
        });
        await producer.connect();
        const write = (n: number) =>
          producer.send({
            topic: TOPIC,
            acks: -1,
            messages: Array.from({ length: 30 }, (_, i) => ({ key: `k${i}`, value: `${n}-${i}` })),
          });
        await write(1);

        const victim = nodes[1];
        if (victim === undefined) throw new Error('no node 2');
        const killedPid = victim.pid;
        await victim.kill();
        expect(isGone(killedPid)).toBe(true);
        // Two of three in sync is enough: writes to every partition still succeed.
        await write(2);
        await expect(victim.kill()).resolves.toBeUndefined(); // killing a dead node is a no-op

        await victim.start();
        expect(victim.pid).not.toBe(killedPid);
        await until(() => fullyInSync(admin), 'the restarted broker back in every ISR');
        await write(3);
        await producer.disconnect();

        // Every write is there, read from the beginning.
        const consumer = kafka.consumer({ groupId: 'cluster-spec' });
        await consumer.connect();
        await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
        const seen = new Set<string>();
        await new Promise<void>((resolve) => {
          void consumer.run({
            eachMessage: ({ message }) => {
              seen.add(message.value?.toString() ?? '');
              if (seen.size === 90) resolve();
              return Promise.resolve();
            },
          });
        });
        await consumer.disconnect();
        expect(seen.size).toBe(90);
      } finally {
        await admin.disconnect();
      }
    } finally {
      await cluster?.stop();
    }
    for (const node of cluster.nodes) expect(isGone(node.pid)).toBe(true);
  });
});
