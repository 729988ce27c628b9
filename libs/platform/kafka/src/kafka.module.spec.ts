import { randomUUID } from 'node:crypto';
import { Test } from '@nestjs/testing';
import type { Admin } from 'kafkajs';
import { Readiness, ReadinessModule } from '@sotto/platform/health';
import {
  foreignPki,
  identityFiles,
  startTcpProxy,
  startTlsImpostor,
  testInfra,
  testTls,
} from '@sotto/testing';
import { KafkaModule, ensureTopic, topicMinInsyncReplicas, type KafkaConnection } from './index';
import { RequestQueue } from './request-queue';

/** The platform's Kafka client, as the relay starts it. */
async function start(connection: KafkaConnection) {
  const moduleRef = await Test.createTestingModule({
    imports: [ReadinessModule, KafkaModule.forRoot({ ...connection, clientId: 'kafka-module-test' })],
  }).compile();
  moduleRef.enableShutdownHooks();
  return moduleRef;
}

describe('KafkaModule', () => {
  // What the relay presents: its own certificate, and the run's CA for the brokers'.
  const relay = identityFiles('message-relay');

  it('connects an admin client over TLS, reports readiness, and creates topics on demand', async () => {
    const moduleRef = await start({ brokers: testInfra().kafkaBrokers, tls: relay });
    try {
      expect(await moduleRef.get(Readiness).report()).toEqual({ ready: true, checks: { kafka: 'ok' } });
      const admin = moduleRef.get<Admin>(KafkaModule.ADMIN);
      const topic = `module-test-${randomUUID()}`;
      const spec = { topic, numPartitions: 3, replicationFactor: 1 };
      await ensureTopic(admin, spec);
      await ensureTopic(admin, spec); // a second call is a no-op, not an error
      const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
      expect(metadata.topics[0]?.partitions).toHaveLength(3);
      await admin.deleteTopics({ topics: [topic] });
    } finally {
      await moduleRef.close();
    }
  });

  it("keeps an idle client's request queues from checking themselves every millisecond (kafkajs's timer, repaired)", async () => {
    const moduleRef = await start({ brokers: testInfra().kafkaBrokers, tls: relay });
    const checks = jest.spyOn(RequestQueue.prototype, 'checkPendingRequests');
    try {
      // The admin client is connected (the module waits for it) and has nothing to ask.
      await new Promise((resolve) => setTimeout(resolve, 200));
      checks.mockClear();
      await new Promise((resolve) => setTimeout(resolve, 500));
      // Unrepaired, each connection checks about once a millisecond: 439 in this half second.
      expect(checks.mock.calls.length).toBeLessThan(10);
    } finally {
      checks.mockRestore();
      await moduleRef.close();
    }
  });

  it('sets min.insync.replicas on the topics it creates, and refuses an existing topic with fewer, naming the setting', async () => {
    const moduleRef = await start({ brokers: testInfra().kafkaBrokers, tls: relay });
    const admin = moduleRef.get<Admin>(KafkaModule.ADMIN);
    const topic = `module-test-${randomUUID()}`;
    try {
      await ensureTopic(admin, { topic, numPartitions: 1, replicationFactor: 1, minInsyncReplicas: 1 });
      expect(await topicMinInsyncReplicas(admin, topic)).toBe(1);
      // The same topic asked to take writes only with two copies: refused, not silently weaker.
      await expect(
        ensureTopic(
          admin,
          { topic, numPartitions: 1, replicationFactor: 1, minInsyncReplicas: 2 },
          { minInsyncReplicas: 'ENVELOPE_TOPIC_MIN_INSYNC_REPLICAS' },
        ),
      ).rejects.toThrow(
        `${topic} has min.insync.replicas=1, fewer than the 2 that ENVELOPE_TOPIC_MIN_INSYNC_REPLICAS asks for`,
      );
      // Created fresh with a stronger minimum, the topic carries it.
      const strong = `module-test-${randomUUID()}`;
      await ensureTopic(admin, {
        topic: strong,
        numPartitions: 1,
        replicationFactor: 1,
        minInsyncReplicas: 2,
      });
      expect(await topicMinInsyncReplicas(admin, strong)).toBe(2);
      await admin.deleteTopics({ topics: [strong] });
    } finally {
      await admin.deleteTopics({ topics: [topic] });
      await moduleRef.close();
    }
  });

  describe('TLS, attacked', () => {
    it('refuses a broker whose certificate is not from its CA, and tells it nothing', async () => {
      const impostor = await startTlsImpostor(identityFiles('kafka', await foreignPki()));
      try {
        await expect(start({ brokers: [impostor.address], tls: relay })).rejects.toThrow(
          /self-signed certificate in certificate chain|unable to verify the first certificate/,
        );
        expect([impostor.handshakes, impostor.bytesReceived]).toEqual([0, 0]);
      } finally {
        await impostor.close();
      }
    });

    it('refuses the real broker reached by an address its certificate does not name', async () => {
      const [broker = ''] = testInfra().kafkaBrokers;
      const proxy = await startTcpProxy(broker, { listen: '127.0.0.2' });
      try {
        await expect(start({ brokers: [proxy.address], tls: relay })).rejects.toThrow(
          "Hostname/IP does not match certificate's altnames: IP: 127.0.0.2 is not in the cert's list",
        );
      } finally {
        await proxy.close();
      }
    });

    it('is refused by the broker without a client certificate', async () => {
      await expect(start({ brokers: testInfra().kafkaBrokers, tls: { ca: testTls().ca } })).rejects.toThrow(
        /alert bad certificate/,
      );
    });
  });
});
