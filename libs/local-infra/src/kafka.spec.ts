import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { startKafka } from './kafka';
import { freePort } from './ports';
import type { RunningKafka } from './types';
import { isGone, tempDir } from './test-support';

const TOPIC = 'local-infra.test';

function client(kafka: RunningKafka): Kafka {
  return new Kafka({ clientId: 'local-infra-spec', brokers: kafka.brokers, logLevel: logLevel.NOTHING });
}

/** Reads the topic from the beginning with a fresh group until a record with `key` shows up. */
async function readRecord(kafka: RunningKafka, key: string): Promise<string> {
  const consumer = client(kafka).consumer({ groupId: `local-infra-spec-${Date.now()}` });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no record with key ${key} within 60 s`)), 60_000);
      void consumer.run({
        eachMessage: ({ message }) => {
          if (message.key !== null && Buffer.from(message.key).toString('utf8') === key) {
            clearTimeout(timer);
            resolve(message.value === null ? '' : Buffer.from(message.value).toString('utf8'));
          }
          return Promise.resolve();
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
}

describe('startKafka', () => {
  const tmp = tempDir('kafka');
  afterAll(() => tmp.cleanup());

  it('produces and consumes, and keeps topics and records across a restart on another port', async () => {
    const first = await startKafka({ dataDir: tmp.dir });
    let second: RunningKafka | undefined;
    try {
      expect(first.brokers).toEqual([expect.stringMatching(/^127\.0\.0\.1:\d+$/)]);
      const admin = client(first).admin();
      await admin.connect();
      await admin.createTopics({
        topics: [{ topic: TOPIC, numPartitions: 2, replicationFactor: 1 }],
        waitForLeaders: true,
      });
      await admin.disconnect();

      const producer = client(first).producer({
        idempotent: true,
        maxInFlightRequests: 1,
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      await producer.connect();
      await producer.send({ topic: TOPIC, acks: -1, messages: [{ key: 'k1', value: 'hello' }] });
      await producer.disconnect();
      expect(await readRecord(first, 'k1')).toBe('hello');

      await first.stop();
      expect(isGone(first.pid)).toBe(true);

      const oldPort = Number(first.brokers[0]?.split(':')[1]);
      let port = await freePort();
      while (port === oldPort) port = await freePort();
      second = await startKafka({ dataDir: tmp.dir, port });
      expect(second.brokers).toEqual([`127.0.0.1:${port}`]);

      const admin2 = client(second).admin();
      await admin2.connect();
      expect(await admin2.listTopics()).toContain(TOPIC);
      await admin2.disconnect();
      expect(await readRecord(second, 'k1')).toBe('hello');
    } finally {
      await first.stop();
      await second?.stop();
    }
    expect(isGone(first.pid)).toBe(true);
    expect(isGone(second.pid)).toBe(true);
  });
});
