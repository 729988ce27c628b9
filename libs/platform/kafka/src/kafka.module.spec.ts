import { randomUUID } from 'node:crypto';
import { Test } from '@nestjs/testing';
import type { Admin } from 'kafkajs';
import { Readiness, ReadinessModule } from '@sotto/platform/health';
import { testInfra } from '@sotto/testing';
import { KafkaModule, ensureTopic } from './index';

describe('KafkaModule', () => {
  it('connects an admin client, reports readiness, and creates topics on demand', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        ReadinessModule,
        KafkaModule.forRoot({ brokers: testInfra().kafkaBrokers, clientId: 'kafka-module-test' }),
      ],
    }).compile();
    moduleRef.enableShutdownHooks();
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
});
