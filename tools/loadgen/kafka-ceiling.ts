/**
 * The raw ceiling of a Kafka broker, measured with Kafka's own tools from
 * the kafka-tools artifact (what bin/kafka-producer-perf-test.sh and
 * bin/kafka-consumer-perf-test.sh run): ProducerPerformance at acks=all with
 * the idempotent producer, then ConsumerPerformance reading the same records
 * back, on a scratch topic with as many partitions as the envelope topic.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { envelopesTopic } from '@sotto/contracts';
import { clientTlsOptions, kafkaClientConfig, runKafkaTool, type ServerTls } from '@sotto/local-infra';
import { cpuSeconds } from './cpu';

export interface KafkaTarget {
  readonly brokers: readonly string[];
  /** Set when the broker serves mutual TLS: its CA, and the certificate to present. */
  readonly tls?: ServerTls;
  /** The broker's pid, to measure the CPU it spends per record; undefined when it is not local. */
  readonly pid?: number;
}

export interface KafkaCeiling {
  readonly topicPartitions: number;
  readonly records: number;
  readonly recordBytes: number;
  readonly producer: {
    readonly recordsPerSecond: number;
    readonly MBps: number;
    readonly latencyMs: { avg: number; p50: number; p95: number; p99: number; max: number };
    /** CPU the broker spent per record while the producer ran. */
    readonly brokerCpuMicrosPerRecord?: number;
  };
  readonly consumer: { readonly recordsPerSecond: number; readonly MBps: number };
}

const PRODUCER_SUMMARY =
  /(\d+) records sent, ([\d.]+) records\/sec \(([\d.]+) MB\/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th/;

/** ProducerPerformance's closing line, parsed. */
export function parseProducerSummary(output: string): KafkaCeiling['producer'] {
  const match = PRODUCER_SUMMARY.exec(output);
  if (match === null) throw new Error(`ProducerPerformance printed no summary:\n${output.trim()}`);
  const value = (index: number): number => Number(match[index]);
  return {
    recordsPerSecond: Math.round(value(2)),
    MBps: value(3),
    latencyMs: { avg: value(4), p50: value(6), p95: value(7), p99: value(8), max: value(5) },
  };
}

/**
 * ConsumerPerformance's line without header: start.time, end.time,
 * data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, …
 */
export function parseConsumerSummary(stdout: string, records: number): KafkaCeiling['consumer'] {
  for (const line of stdout.trim().split('\n').reverse()) {
    const fields = line.split(',').map((field) => field.trim());
    if (fields.length < 6) continue;
    const consumed = Number(fields[4]);
    if (!Number.isInteger(consumed)) continue;
    if (consumed < records) throw new Error(`ConsumerPerformance read ${consumed} of ${records} records`);
    return { recordsPerSecond: Math.round(Number(fields[5])), MBps: Number(fields[3]) };
  }
  throw new Error(`ConsumerPerformance printed no summary:\n${stdout.trim()}`);
}

async function check(
  what: string,
  result: Promise<{ code: number | null; output: string }>,
): Promise<string> {
  const { code, output } = await result;
  if (code !== 0) throw new Error(`${what} failed (exit ${String(code)}):\n${output.trim()}`);
  return output;
}

export async function measureKafkaCeiling(
  target: KafkaTarget,
  options: { readonly records: number; readonly recordBytes: number },
  say: (line: string) => void,
): Promise<KafkaCeiling> {
  const kafka = new Kafka({
    clientId: 'sotto-loadgen-kafka-ceiling',
    brokers: [...target.brokers],
    ...(target.tls ? { ssl: clientTlsOptions({ ca: target.tls.ca, ...target.tls.identity }) } : {}),
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  const dir = mkdtempSync(join(tmpdir(), 'sotto-kafka-ceiling-'));
  const topic = `sotto-loadgen-ceiling-${randomUUID()}`;
  await admin.connect();
  try {
    const envelopes = await admin.fetchTopicMetadata({ topics: [envelopesTopic.TOPIC] });
    const partitions = envelopes.topics[0]?.partitions ?? [];
    const replication = partitions[0]?.replicas.length ?? 1;
    await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic, numPartitions: partitions.length, replicationFactor: replication }],
    });
    const config = kafkaClientConfig(dir, target.brokers, target.tls);
    say(
      `raw Kafka: ProducerPerformance, ${options.records} records of ${options.recordBytes} bytes, acks=all, idempotent, ${partitions.length} partitions`,
    );
    const broker: Record<string, number> = target.pid === undefined ? {} : { kafka: target.pid };
    const cpuBefore = cpuSeconds(broker);
    const produced = await check(
      'ProducerPerformance',
      runKafkaTool('org.apache.kafka.tools.ProducerPerformance', [
        '--topic',
        topic,
        '--num-records',
        String(options.records),
        '--record-size',
        String(options.recordBytes),
        '--throughput',
        '-1',
        '--producer.config',
        config,
        '--producer-props',
        'acks=all',
        'enable.idempotence=true',
      ]),
    );
    const cpuAfter = cpuSeconds(broker);
    const producer = parseProducerSummary(produced);
    say('raw Kafka: ConsumerPerformance reading them back');
    const consumed = await check(
      'ConsumerPerformance',
      runKafkaTool('org.apache.kafka.tools.ConsumerPerformance', [
        '--bootstrap-server',
        target.brokers.join(','),
        '--topic',
        topic,
        '--messages',
        String(options.records),
        '--consumer.config',
        config,
        '--group',
        `${topic}-reader`,
        '--timeout',
        '30000',
        '--hide-header',
      ]),
    );
    const brokerCpu = (cpuAfter['kafka'] ?? 0) - (cpuBefore['kafka'] ?? 0);
    return {
      topicPartitions: partitions.length,
      records: options.records,
      recordBytes: options.recordBytes,
      producer: {
        ...producer,
        ...(target.pid === undefined
          ? {}
          : { brokerCpuMicrosPerRecord: Number(((brokerCpu * 1e6) / options.records).toFixed(1)) }),
      },
      consumer: parseConsumerSummary(consumed, options.records),
    };
  } finally {
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect();
    rmSync(dir, { recursive: true, force: true });
  }
}
