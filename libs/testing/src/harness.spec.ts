import { randomUUID } from 'node:crypto';
import { Partitioners } from 'kafkajs';
import { Client } from 'pg';
import { createTestDatabase, operatorDatabaseUrl, testInfra, testKafka, testRedis } from './index';

describe('test harness infrastructure', () => {
  it('serves Kafka, Redis and PostgreSQL over TLS, with certificates of the run’s CA', () => {
    expect(testInfra().storageTls).toEqual(['kafka', 'redis', 'postgres']);
    expect(testInfra().redisUrl).toMatch(/^rediss:\/\/127\.0\.0\.1:\d+$/);
    expect(testInfra().databaseUrl).toMatch(/\?sslmode=verify-full$/);
  });

  it('carries a record through Kafka with kafkajs', async () => {
    const kafka = testKafka({ clientId: 'harness-test' });
    const topic = `harness-${randomUUID()}`;
    const admin = kafka.admin();
    const producer = kafka.producer({ idempotent: true, createPartitioner: Partitioners.DefaultPartitioner });
    const consumer = kafka.consumer({ groupId: `harness-${randomUUID()}` });
    await Promise.all([admin.connect(), producer.connect(), consumer.connect()]);
    try {
      await admin.createTopics({
        topics: [{ topic, numPartitions: 1, replicationFactor: 1 }],
        waitForLeaders: true,
      });
      await producer.send({ topic, acks: -1, messages: [{ key: 'account-1', value: 'ciphertext-bytes' }] });
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      const received = await new Promise<{ key: string; value: string }>((resolve) => {
        void consumer.run({
          eachMessage: ({ message }) => {
            resolve({ key: String(message.key), value: String(message.value) });
            return Promise.resolve();
          },
        });
      });
      expect(received).toEqual({ key: 'account-1', value: 'ciphertext-bytes' });
    } finally {
      await Promise.all([consumer.disconnect(), producer.disconnect()]);
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin.disconnect();
    }
  });

  it('round-trips through Redis with ioredis', async () => {
    const redis = testRedis();
    try {
      const key = `harness:${randomUUID()}`;
      await redis.set(key, Buffer.from([0, 1, 2, 255]));
      expect(await redis.getBuffer(key)).toEqual(Buffer.from([0, 1, 2, 255]));
      expect(await redis.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
    } finally {
      redis.disconnect();
    }
  });

  it('round-trips through PostgreSQL with pg, in a database of its own', async () => {
    const client = new Client({ connectionString: operatorDatabaseUrl(await createTestDatabase()) });
    await client.connect();
    try {
      await client.query('CREATE TABLE t (id integer PRIMARY KEY, body bytea NOT NULL)');
      await client.query('INSERT INTO t VALUES ($1, $2)', [1, Buffer.from('sealed')]);
      const { rows } = await client.query<{ id: number; body: Buffer }>('SELECT id, body FROM t');
      expect(rows).toEqual([{ id: 1, body: Buffer.from('sealed') }]);
    } finally {
      await client.end();
    }
  });
});
