/**
 * Prints the capacity model (see capacity-model.ts) as markdown, from a wire
 * report and a connections report:
 *
 *   npm run capacity -- --wire <wire-report.json> --connections <connections-report.json>
 *
 * The wire report comes from `npm run loadgen:wire -- --duration 20 --json FILE`, the
 * connections report from `npm run loadgen:connections -- --streams 20000 --report FILE`.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  ASSUMPTIONS,
  kafkaMicros,
  marginalMicros,
  planCapacity,
  type Assumptions,
  type CapacityPlan,
  type ConnectionFigures,
  type WireFigures,
} from './capacity-model';

type Json = Record<string, unknown>;

function field(report: Json, path: string, file: string): number {
  let value: unknown = report;
  for (const key of path.split('.')) value = (value as Json | undefined)?.[key];
  if (typeof value !== 'number') throw new Error(`${file}: ${path} is missing; is it the right report?`);
  return value;
}

function optional<K extends string>(report: Json, path: string, key: K): Partial<Record<K, number>> {
  let value: unknown = report;
  for (const part of path.split('.')) value = (value as Json | undefined)?.[part];
  return typeof value === 'number' ? ({ [key]: value } as Partial<Record<K, number>>) : {};
}

function numbers(report: Json, path: string, file: string): Record<string, number> {
  const value = report[path];
  if (typeof value !== 'object' || value === null) throw new Error(`${file}: ${path} is missing`);
  return Object.fromEntries(
    Object.entries(value).filter((entry): entry is [string, number] => typeof entry[1] === 'number'),
  );
}

export function wireFigures(report: Json, file: string): WireFigures {
  return {
    cpuMicrosPerMessage: numbers(report, 'cpuMicrosPerMessage', file),
    idleCpuMillicores: numbers(report, 'idleCpuMillicores', file),
    devices: field(report, 'devices', file),
    messagesPerSecond: field(report, 'messagesPerSecond', file),
    envelopeBytes: field(report, 'envelopeBytes', file),
    kafkaCeilingRecordsPerSecond: field(report, 'kafkaCeiling.producer.recordsPerSecond', file),
    ...optional(
      report,
      'kafkaCeiling.producer.brokerCpuMicrosPerRecord',
      'kafkaCeilingBrokerMicrosPerRecord',
    ),
    kafkaBytesPerRecord: field(report, 'storage.kafkaBytesPerRecord', file),
    redisBytesPerQueuedEnvelope: field(report, 'storage.redisBytesPerQueuedEnvelope', file),
    machine: {
      cores: field(report, 'machine.cores', file),
      loadAverage: field(report, 'machine.loadAverage', file),
    },
  };
}

export function connectionFigures(report: Json, file: string): ConnectionFigures {
  return {
    streams: field(report, 'streams', file),
    rssBytesPerStream: field(report, 'gatewayMemory.rssBytesPerStream', file),
    heapBytesPerStream: field(report, 'gatewayMemory.heapBytesPerStream', file),
    // With its young generation grown as under load (reports before it was measured: as found before the streams).
    emptyGatewayRssBytes:
      optional(report, 'gatewayMemory.emptyRssBytes', 'empty').empty ??
      field(report, 'gatewayMemory.before.rssBytes', file),
    deliveryP99Ms: field(report, 'delivery.latencyMs.p99', file),
    ...optional(report, 'gatewayIdleMillicores', 'gatewayIdleMillicores'),
    machine: {
      cores: field(report, 'machine.cores', file),
      loadAverage: field(report, 'machine.loadAverage', file),
    },
  };
}

const count = (value: number): string =>
  Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '–';
const cores = (value: number): string => count(Math.ceil(value));
const bytes = (value: number): string => {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 100 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
};

/** WhatsApp's published 2014 figures, for scale. */
const WHATSAPP_2014 = {
  messagesPerDay: 64e9,
  peakMessagesPerSecond: 1e6,
  cores: 10_000,
  connectionsPerServer: '1–2 million',
};

export function renderPlan(
  plan: CapacityPlan,
  wire: WireFigures,
  connections: ConnectionFigures,
  a: Assumptions = ASSUMPTIONS,
): string {
  const lines: string[] = [];
  const row = (...cells: string[]): number => lines.push(`| ${cells.join(' | ')} |`);
  lines.push(
    `For ${count(a.messagesPerDay)} messages a day (${count(plan.averageMessagesPerSecond)}/s on average, ` +
      `${count(plan.peakMessagesPerSecond)}/s at a peak factor of ${a.peakFactor}) and ${count(a.connectedDevices)} connected devices:`,
    '',
  );
  row('component', 'cores', 'memory', 'count', 'from');
  row('---', '---:', '---:', '---:', '---');
  for (const service of plan.services) {
    const from =
      service.name === 'gateway'
        ? `${service.microsPerMessage.toFixed(1)} µs/message beyond idle (${wire.cpuMicrosPerMessage['gateway'] ?? 0} with it); ${count(plan.gateway.bytesPerStream)} B/stream + ${bytes(connections.emptyGatewayRssBytes)} empty; idle ${(plan.gateway.idleCoresPerStream * 1e6).toFixed(2)} µcores/stream`
        : `${service.microsPerMessage.toFixed(1)} µs/message beyond idle (${wire.cpuMicrosPerMessage[service.name] ?? 0} with it)`;
    row(
      service.name,
      cores(service.cores),
      service.memoryBytes > 0 ? bytes(service.memoryBytes) : '–',
      service.pods === undefined
        ? '–'
        : `${count(service.pods)} pods of ${count(a.streamsPerGateway)} streams`,
      from,
    );
  }
  row(
    'Kafka',
    cores(plan.kafka.cores),
    `${bytes(plan.kafka.logBytes)} disk`,
    `${count(plan.kafka.brokers)} brokers, ${count(plan.kafka.partitions)} partitions`,
    `${kafkaMicros(wire).toFixed(1)} µs/message (the larger of ${marginalMicros(wire, 'kafka').toFixed(1)} beyond idle in the wire run and ${wire.kafkaCeilingBrokerMicrosPerRecord ?? '–'} per record at the raw ceiling) × RF ${a.kafkaReplication}; ${wire.kafkaBytesPerRecord} B/record; ` +
      `${count(plan.kafka.brokerRecordsPerSecond)} records/s per broker (${count(plan.kafka.brokersForThroughput)} for throughput, ${count(plan.kafka.brokersForDisk)} for disk)`,
  );
  row(
    'Redis',
    cores(plan.redis.cores),
    bytes(plan.redis.memoryBytes),
    `${count(plan.redis.masters)} masters + ${count(plan.redis.masters * a.redisReplicasPerMaster)} replicas`,
    `${marginalMicros(wire, 'redis').toFixed(1)} µs/message beyond idle (${count(plan.redis.masterMessagesPerSecond)} messages/s per master; ${count(plan.redis.mastersForThroughput)} for throughput, ${count(plan.redis.mastersForMemory)} for memory); ` +
      `${count(plan.redis.queuedEnvelopes)} queued × ${wire.redisBytesPerQueuedEnvelope} B + presence ${bytes(plan.redis.presenceBytes)}`,
  );
  row(
    'PostgreSQL',
    cores(plan.postgres.cores),
    `${bytes(plan.postgres.storageBytes)} disk`,
    '–',
    `${marginalMicros(wire, 'postgres').toFixed(1)} µs/message beyond idle; ${bytes(a.directoryBytesPerDevice)}/device (assumed)`,
  );
  row('**total**', `**${cores(plan.totalCores)}**`, `**${bytes(plan.totalMemoryBytes)}** RAM`, '', '');
  lines.push('');
  lines.push('Measured figures used:', '');
  lines.push(
    `- wire report: ${count(wire.messagesPerSecond)} messages/s of ${wire.envelopeBytes} B at ${wire.devices} devices; ` +
      `CPU µs per message ${Object.entries(wire.cpuMicrosPerMessage)
        .map(([name, value]) => `${name} ${value}`)
        .join(', ')}; ` +
      `raw Kafka ${count(wire.kafkaCeilingRecordsPerSecond)} records/s; ${wire.kafkaBytesPerRecord} B per record in Kafka's log; ` +
      `${wire.redisBytesPerQueuedEnvelope} B of Redis per queued envelope (machine: ${wire.machine.cores} cores, load average ${wire.machine.loadAverage})`,
    `- connections report: ${count(connections.streams)} streams on one gateway, ${count(connections.rssBytesPerStream)} B RSS and ` +
      `${count(connections.heapBytesPerStream)} B heap per stream, ${bytes(connections.emptyGatewayRssBytes)} empty (its young generation as grown under load); ` +
      (connections.gatewayIdleMillicores === undefined
        ? 'gateway CPU while holding them not measured (idle gateway of the wire run counted per pod); '
        : `gateway ${connections.gatewayIdleMillicores} millicores holding them; `) +
      `delivery p99 ${connections.deliveryP99Ms} ms (machine: ${connections.machine.cores} cores, load average ${connections.machine.loadAverage})`,
    '',
    'Assumptions:',
    '',
  );
  const percent = (value: number): string => `${Math.round(value * 100)}%`;
  lines.push(
    `- ${percent(a.liveShare)} of messages reach a connected device and leave its mailbox within ${a.liveResidenceSeconds} s; the rest wait ${a.mailboxResidenceHours} h on average`,
    `- services run at ${percent(a.cpuUtilisation)} of their cores at peak; ${count(a.streamsPerGateway)} streams per gateway`,
    `- Kafka: replication factor ${a.kafkaReplication}, ${a.kafkaRetentionHours} h retention, a broker ${a.kafkaBrokerSpeedup}× the measured one used to ${percent(a.kafkaBrokerUtilisation)} of its ceiling, ${bytes(a.kafkaDiskPerBrokerBytes)} of log disk each, ${count(a.kafkaPartitionMessagesPerSecond)} messages/s per partition and at least one partition per relay core`,
    `- Redis: ${a.redisReplicasPerMaster} replica per master, ${bytes(a.redisMemoryPerShardBytes)} usable per master, one core each used to ${percent(a.redisCoreUtilisation)}; presence ${a.presenceBytesPerDevice} B per connected device (not yet measured)`,
    `- PostgreSQL: ${bytes(a.directoryBytesPerDevice)} of directory per device (identity, signed and one-time EC and Kyber prekeys; not yet measured)`,
    '',
  );
  const perCore = (messagesPerSecond: number, coreCount: number): string =>
    count(messagesPerSecond / coreCount);
  lines.push('Against WhatsApp, 2014 (published figures):', '');
  lines.push(
    '| | messages a day | peak messages/s | cores | peak messages/s per core | connections per server |',
  );
  lines.push('| --- | ---: | ---: | ---: | ---: | --- |');
  lines.push(
    `| WhatsApp 2014 | ${count(WHATSAPP_2014.messagesPerDay)} | ~${count(WHATSAPP_2014.peakMessagesPerSecond)} | ~${count(WHATSAPP_2014.cores)} | ~${perCore(WHATSAPP_2014.peakMessagesPerSecond, WHATSAPP_2014.cores)} | ${WHATSAPP_2014.connectionsPerServer} |`,
    `| Sotto, this model | ${count(a.messagesPerDay)} | ${count(plan.peakMessagesPerSecond)} | ${cores(plan.totalCores)} | ${perCore(plan.peakMessagesPerSecond, plan.totalCores)} | ${count(a.streamsPerGateway)} per gateway process |`,
  );
  return `${lines.join('\n')}\n`;
}

function main(argv: string[]): void {
  const { values } = parseArgs({
    args: argv,
    options: { wire: { type: 'string' }, connections: { type: 'string' } },
  });
  if (values.wire === undefined || values.connections === undefined) {
    throw new Error(
      'usage: npm run capacity -- --wire <wire-report.json> --connections <connections-report.json>',
    );
  }
  const read = (file: string): Json => JSON.parse(readFileSync(file, 'utf8')) as Json;
  const wire = wireFigures(read(values.wire), values.wire);
  const connections = connectionFigures(read(values.connections), values.connections);
  process.stdout.write(renderPlan(planCapacity(wire, connections), wire, connections));
}

if (require.main === module) {
  try {
    main(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`[capacity] ${(error as Error).message}\n`);
    process.exit(2);
  }
}
