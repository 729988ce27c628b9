import { join } from 'node:path';
import { Kafka, Partitioners, logLevel, type KafkaConfig } from 'kafkajs';
import { clientTlsOptions, prepareLocalPki, type ClientTlsFiles } from '@sotto/platform/tls';
import { startKafka } from './kafka';
import { freePort } from './ports';
import type { RunningKafka } from './types';
import { isGone, tempDir } from './test-support';

const TOPIC = 'local-infra.test';

/** A client of the broker; of a TLS broker, with these files (by default, a certificate of its CA). */
let clientTls: ClientTlsFiles = {};
function client(kafka: RunningKafka, config: Partial<KafkaConfig> = {}): Kafka {
  return new Kafka({
    clientId: 'local-infra-spec',
    brokers: kafka.brokers,
    logLevel: logLevel.NOTHING,
    ...(kafka.ca ? { ssl: clientTlsOptions(clientTls) } : {}),
    ...config,
  });
}

/** Lists topics once, without retries: "listed", or the error. */
async function listOnce(kafka: Kafka): Promise<string> {
  const admin = kafka.admin();
  try {
    await admin.connect();
    await admin.listTopics();
    return 'listed';
  } catch (error) {
    return (error as Error).message;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
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

  it('produces and consumes, and keeps topics and records across a restart on another port, with mutual TLS only', async () => {
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
      const pki = await prepareLocalPki({
        dir: join(tmp.dir, 'pki'),
        servers: ['kafka'],
        clients: ['client'],
      });
      const identity = (name: string) => ({ ca: pki.ca, ...pki.identities[name] });
      clientTls = identity('client');
      second = await startKafka({ dataDir: tmp.dir, port, tls: { ca: pki.ca, identity: identity('kafka') } });
      expect(second.brokers).toEqual([`127.0.0.1:${port}`]);
      expect(second.ca).toBe(pki.ca);
      // Nothing in plaintext, nothing without a certificate of the CA.
      const once = { retry: { retries: 0 }, connectionTimeout: 3000, requestTimeout: 3000 };
      expect(await listOnce(client(second, { ...once, ssl: false }))).toBe('Closed connection');
      expect(await listOnce(client(second, { ...once, ssl: clientTlsOptions({ ca: pki.ca }) }))).toMatch(
        /alert bad certificate/,
      );

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
