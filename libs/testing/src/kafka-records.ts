import { randomUUID } from 'node:crypto';
import { testKafka } from './storage';

/** One record of a topic as Kafka keeps it. */
export interface TopicRecord {
  readonly partition: number;
  readonly key: Buffer;
  readonly value: Buffer;
  readonly headers: Readonly<Record<string, Buffer>>;
}

/**
 * Every record of `topic` on the harness's Kafka, from the beginning up to the end as it is when
 * called: what the platform keeps there, for tests that look for what must not be in it.
 */
export async function topicRecords(topic: string): Promise<TopicRecord[]> {
  const kafka = testKafka({ clientId: 'topic-scan' });
  const admin = kafka.admin();
  const consumer = kafka.consumer({ groupId: `scan-${randomUUID()}` });
  await Promise.all([admin.connect(), consumer.connect()]);
  try {
    // A topic not made yet holds nothing.
    if (!(await admin.listTopics()).includes(topic)) return [];
    const offsets = await admin.fetchTopicOffsets(topic);
    const remaining = new Map(
      offsets.filter((o) => o.high !== o.low).map((o) => [o.partition, BigInt(o.high)]),
    );
    const records: TopicRecord[] = [];
    if (remaining.size === 0) return records;
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve) => {
      void consumer.run({
        eachMessage: ({ partition, message }) => {
          const end = remaining.get(partition);
          if (end !== undefined && BigInt(message.offset) < end) {
            records.push({
              partition,
              key: message.key ?? Buffer.alloc(0),
              value: message.value ?? Buffer.alloc(0),
              headers: Object.fromEntries(
                Object.entries(message.headers ?? {}).map(([name, value]) => [
                  name,
                  Buffer.concat([value ?? []].flat().map((part) => Buffer.from(part))),
                ]),
              ),
            });
          }
          if (end !== undefined && BigInt(message.offset) + 1n >= end) remaining.delete(partition);
          if (remaining.size === 0) resolve();
          return Promise.resolve();
        },
      });
    });
    return records;
  } finally {
    await Promise.all([admin.disconnect(), consumer.disconnect()]);
  }
}
