/**
 * What one envelope costs the storage under the message path, measured on
 * the platform the wire load generator started: bytes per record in the
 * envelope topic's log on the broker's disk, and bytes of Redis memory per
 * envelope waiting in an offline device's mailbox.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigResourceTypes, Kafka, logLevel } from 'kafkajs';
import Redis from 'ioredis';
import { envelopesTopic } from '@sotto/contracts';
import { clientTlsOptions } from '@sotto/local-infra';

interface TlsFiles {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

export interface StorageTarget {
  readonly kafkaBrokers: readonly string[];
  readonly redisUrl: string;
  /** The operator's certificate, for the servers that take only mutual TLS. */
  readonly kafkaTls?: TlsFiles;
  readonly redisTls?: TlsFiles;
}

export interface StorageReport {
  /** Bytes of the envelope topic's log segments on the broker's disk (one replica) per record in it. */
  readonly kafkaBytesPerRecord: number;
  readonly kafkaRecords: number;
  /** Redis memory per envelope queued in a mailbox: MEMORY USAGE of the mailbox's keys, before and after. */
  readonly redisBytesPerQueuedEnvelope: number;
  /** The same from INFO's used_memory, which counts everything else Redis did meanwhile too. */
  readonly redisUsedMemoryBytesPerQueuedEnvelope: number;
  readonly queuedEnvelopes: number;
  readonly envelopeBytes: number;
}

/** The size of every file under `dir` whose name ends with `.log`. */
function logBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isFile() && entry.name.endsWith('.log')) total += statSync(join(dir, entry.name)).size;
  }
  return total;
}

/** Kafka's log directories of the broker, from its own configuration. */
async function kafkaLogBytesPerRecord(target: StorageTarget): Promise<{ bytes: number; records: number }> {
  const kafka = new Kafka({
    clientId: 'sotto-loadgen-storage',
    brokers: [...target.kafkaBrokers],
    ...(target.kafkaTls ? { ssl: clientTlsOptions(target.kafkaTls) } : {}),
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const { brokers } = await admin.describeCluster();
    const offsets = await admin.fetchTopicOffsets(envelopesTopic.TOPIC);
    const records = offsets.reduce(
      (sum, partition) => sum + Number(partition.high) - Number(partition.low),
      0,
    );
    let bytes = 0;
    for (const broker of brokers) {
      const described = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [
          { type: ConfigResourceTypes.BROKER, name: String(broker.nodeId), configNames: ['log.dirs'] },
        ],
      });
      const dirs = described.resources[0]?.configEntries.find((entry) => entry.configName === 'log.dirs');
      if (dirs === undefined) throw new Error(`broker ${broker.nodeId} does not say where its logs are`);
      for (const dir of dirs.configValue.split(',')) {
        for (const entry of readdirSync(dir, { withFileTypes: true })) {
          if (entry.isDirectory() && entry.name.startsWith(`${envelopesTopic.TOPIC}-`)) {
            bytes += logBytes(join(dir, entry.name));
          }
        }
      }
    }
    // One replica's share: the model multiplies by the replication factor.
    const replicas = (await admin.fetchTopicMetadata({ topics: [envelopesTopic.TOPIC] })).topics[0]
      ?.partitions[0]?.replicas.length;
    return { bytes: bytes / (replicas ?? 1), records };
  } finally {
    await admin.disconnect();
  }
}

const mailboxKeys = (accountId: string, deviceId: number): string[] => {
  const base = `sotto:mailbox:{${accountId}:${deviceId}}`;
  return ['queue', 'messages', 'sequence', 'arrivals', 'bytes'].map((suffix) => `${base}:${suffix}`);
};

/**
 * Measures both: `queue(count)` must put `count` envelopes of `envelopeBytes`
 * in the mailbox of `device`, a device with no stream open (nothing takes
 * them out); the probe waits until the mailbox holds them all.
 */
export async function measureStorage(
  target: StorageTarget,
  device: { readonly accountId: string; readonly deviceId: number },
  options: { readonly count: number; readonly envelopeBytes: number },
  queue: (count: number) => Promise<void>,
): Promise<StorageReport> {
  const redis = new Redis(target.redisUrl, {
    ...(target.redisTls ? { tls: clientTlsOptions(target.redisTls) } : {}),
    maxRetriesPerRequest: 3,
  });
  try {
    const keys = mailboxKeys(device.accountId, device.deviceId);
    const [queueKey] = keys;
    if (queueKey === undefined) throw new Error('no mailbox key');
    const usage = async (): Promise<number> => {
      let sum = 0;
      for (const key of keys) sum += Number((await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')) ?? 0);
      return sum;
    };
    const usedMemory = async (): Promise<number> =>
      Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? 0);
    const queuedBefore = await redis.zcard(queueKey);
    const usageBefore = await usage();
    const usedBefore = await usedMemory();
    await queue(options.count);
    const deadline = Date.now() + 60_000;
    while ((await redis.zcard(queueKey)) < queuedBefore + options.count) {
      if (Date.now() > deadline) throw new Error('the envelopes did not all reach the mailbox within 60 s');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const usageAfter = await usage();
    const usedAfter = await usedMemory();
    const kafka = await kafkaLogBytesPerRecord(target);
    return {
      kafkaBytesPerRecord: kafka.records === 0 ? 0 : Math.round(kafka.bytes / kafka.records),
      kafkaRecords: kafka.records,
      redisBytesPerQueuedEnvelope: Math.round((usageAfter - usageBefore) / options.count),
      redisUsedMemoryBytesPerQueuedEnvelope: Math.round((usedAfter - usedBefore) / options.count),
      queuedEnvelopes: options.count,
      envelopeBytes: options.envelopeBytes,
    };
  } finally {
    redis.disconnect();
  }
}

/**
 * Commands Redis has run since it started, by name (INFO commandstats' `calls`), and in
 * total: read before and after a run, they give its commands per message.
 */
export async function redisCommandCounts(target: StorageTarget): Promise<Map<string, number>> {
  const redis = new Redis(target.redisUrl, {
    ...(target.redisTls ? { tls: clientTlsOptions(target.redisTls) } : {}),
    lazyConnect: true,
    maxRetriesPerRequest: 1,
  });
  try {
    await redis.connect();
    const counts = new Map<string, number>();
    for (const line of (await redis.info('commandstats')).split('\n')) {
      const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
      if (match?.[1] !== undefined && match[2] !== undefined) counts.set(match[1], Number(match[2]));
    }
    return counts;
  } finally {
    redis.disconnect();
  }
}
