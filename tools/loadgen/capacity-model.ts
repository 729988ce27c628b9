/**
 * The capacity model: what 100 billion messages a day and 2 billion connected
 * devices need, from the figures the load generators measured (CPU per
 * message per process, bytes per envelope in Kafka and Redis, gateway memory
 * per stream) and the assumptions listed in ASSUMPTIONS. Pure arithmetic;
 * tools/loadgen/capacity.ts reads the reports and prints the result.
 */

/** What the model takes from a wire report (npm run loadgen:wire -- --json FILE). */
export interface WireFigures {
  /** CPU µs per delivered message, by process name (gateway, message-relay, kafka, redis, postgres, …). */
  readonly cpuMicrosPerMessage: Readonly<Record<string, number>>;
  /** Thousandths of a core each process used idle, with `devices` streams open. */
  readonly idleCpuMillicores: Readonly<Record<string, number>>;
  readonly devices: number;
  readonly messagesPerSecond: number;
  readonly envelopeBytes: number;
  /** Kafka's own ProducerPerformance on the same broker (acks=all, idempotent, same record size). */
  readonly kafkaCeilingRecordsPerSecond: number;
  /** The broker's CPU per record during that ceiling run, when its CPU was measured. */
  readonly kafkaCeilingBrokerMicrosPerRecord?: number;
  readonly kafkaBytesPerRecord: number;
  readonly redisBytesPerQueuedEnvelope: number;
  readonly machine: { readonly cores: number; readonly loadAverage: number };
}

/** What the model takes from a connections report (npm run loadgen:connections -- --streams N --report FILE). */
export interface ConnectionFigures {
  readonly streams: number;
  readonly rssBytesPerStream: number;
  readonly heapBytesPerStream: number;
  /** The gateway's resident memory before any stream: what a pod costs empty. */
  readonly emptyGatewayRssBytes: number;
  readonly deliveryP99Ms: number;
  /** Thousandths of a core the gateway used while holding the streams idle, when measured. */
  readonly gatewayIdleMillicores?: number;
  readonly machine: { readonly cores: number; readonly loadAverage: number };
}

export interface Assumptions {
  readonly messagesPerDay: number;
  readonly peakFactor: number;
  readonly connectedDevices: number;
  /** Share of messages whose recipient is connected when they arrive (they leave the mailbox within a second). */
  readonly liveShare: number;
  /** How long a message for an offline device waits in its mailbox, on average, in hours. */
  readonly mailboxResidenceHours: number;
  /** How long a live message sits in the mailbox until its acknowledgement, in seconds. */
  readonly liveResidenceSeconds: number;
  /** Share of a core a service may use at peak; the rest is headroom (a zone's loss, GC, rebalances). */
  readonly cpuUtilisation: number;
  /** Streams one gateway process holds. */
  readonly streamsPerGateway: number;
  /** Envelope log retention, hours. */
  readonly kafkaRetentionHours: number;
  readonly kafkaReplication: number;
  /** Share of a broker's measured ProducerPerformance ceiling used at peak. */
  readonly kafkaBrokerUtilisation: number;
  /** How many times faster a production broker is than the measured one (dedicated cores and disks vs a shared 2-core machine). */
  readonly kafkaBrokerSpeedup: number;
  /** Usable log disk per broker, bytes. */
  readonly kafkaDiskPerBrokerBytes: number;
  /** Messages per second one partition takes (one relay consumer reads each). */
  readonly kafkaPartitionMessagesPerSecond: number;
  /** Replicas per Redis master. */
  readonly redisReplicasPerMaster: number;
  /** Usable memory per Redis master, bytes. */
  readonly redisMemoryPerShardBytes: number;
  /** Share of one core a Redis master (single-threaded) may use at peak. */
  readonly redisCoreUtilisation: number;
  /** Presence claim per connected device in Redis, bytes (not yet measured). */
  readonly presenceBytesPerDevice: number;
  /** Directory rows per device in PostgreSQL: keys, one-time EC and Kyber prekeys (not yet measured). */
  readonly directoryBytesPerDevice: number;
}

export const ASSUMPTIONS: Assumptions = {
  messagesPerDay: 100e9,
  peakFactor: 3,
  connectedDevices: 2e9,
  liveShare: 0.8,
  mailboxResidenceHours: 8,
  liveResidenceSeconds: 1,
  cpuUtilisation: 0.6,
  streamsPerGateway: 20_000,
  kafkaRetentionHours: 24,
  kafkaReplication: 3,
  kafkaBrokerUtilisation: 0.5,
  kafkaBrokerSpeedup: 4,
  kafkaDiskPerBrokerBytes: 8e12,
  kafkaPartitionMessagesPerSecond: 5_000,
  redisReplicasPerMaster: 1,
  redisMemoryPerShardBytes: 25 * 2 ** 30,
  redisCoreUtilisation: 0.5,
  presenceBytesPerDevice: 200,
  directoryBytesPerDevice: 200 * 1024,
};

/** The message path's processes, in the order the table shows them. */
export const SERVICES = ['gateway', 'message-relay', 'presence', 'prekey-directory'] as const;

/**
 * A process's CPU per message beyond what it uses idle: the wire report's
 * figure less its idle millicores spread over the messages of a second. At
 * scale a pod's idle cost is paid once per pod, not once per message; on a
 * small, shared machine it would otherwise dominate.
 */
export function marginalMicros(wire: WireFigures, name: string): number {
  const total = wire.cpuMicrosPerMessage[name] ?? 0;
  const idle =
    wire.messagesPerSecond > 0 ? ((wire.idleCpuMillicores[name] ?? 0) * 1000) / wire.messagesPerSecond : 0;
  return Math.max(0, total - idle);
}

/**
 * The broker's CPU per message: beyond idle in the wire run, but never less
 * than the broker spent per record at Kafka's own ceiling.
 */
export function kafkaMicros(wire: WireFigures): number {
  return Math.max(marginalMicros(wire, 'kafka'), wire.kafkaCeilingBrokerMicrosPerRecord ?? 0);
}

export interface ServiceNeed {
  readonly name: string;
  readonly microsPerMessage: number;
  readonly cores: number;
  readonly memoryBytes: number;
  readonly pods?: number;
}

export interface CapacityPlan {
  readonly averageMessagesPerSecond: number;
  readonly peakMessagesPerSecond: number;
  readonly services: readonly ServiceNeed[];
  readonly gateway: {
    readonly pods: number;
    readonly bytesPerStream: number;
    readonly memoryPerPodBytes: number;
    readonly idleCoresPerStream: number;
  };
  readonly kafka: {
    readonly cores: number;
    readonly brokers: number;
    readonly brokersForThroughput: number;
    readonly brokersForDisk: number;
    readonly partitions: number;
    readonly logBytes: number;
    readonly brokerRecordsPerSecond: number;
  };
  readonly redis: {
    readonly cores: number;
    readonly masters: number;
    /** Messages per second one master takes at its utilisation, from Redis's measured CPU per message. */
    readonly masterMessagesPerSecond: number;
    readonly mastersForThroughput: number;
    readonly mastersForMemory: number;
    readonly nodes: number;
    readonly queuedEnvelopes: number;
    readonly mailboxBytes: number;
    readonly presenceBytes: number;
    readonly memoryBytes: number;
  };
  readonly postgres: {
    readonly cores: number;
    readonly storageBytes: number;
  };
  readonly totalCores: number;
  readonly totalMemoryBytes: number;
}

const up = (value: number): number => Math.ceil(value - 1e-9);

/** Cores a per-message cost needs at the peak rate, with headroom. */
function coresFor(microsPerMessage: number, messagesPerSecond: number, utilisation: number): number {
  return (microsPerMessage * messagesPerSecond) / 1e6 / utilisation;
}

export function planCapacity(
  wire: WireFigures,
  connections: ConnectionFigures,
  assumptions: Assumptions = ASSUMPTIONS,
): CapacityPlan {
  const a = assumptions;
  const average = a.messagesPerDay / 86_400;
  const peak = average * a.peakFactor;
  const micros = (name: string): number => marginalMicros(wire, name);

  // Gateways: as many as the streams need, each with its empty process plus its streams.
  const bytesPerStream = Math.max(0, connections.rssBytesPerStream);
  const gatewayPods = up(a.connectedDevices / a.streamsPerGateway);
  const memoryPerPodBytes = connections.emptyGatewayRssBytes + a.streamsPerGateway * bytesPerStream;
  // Idle cost: measured with the streams held where the connections report has it, else the wire run's idle gateway (few streams) per pod.
  const idleCoresPerStream =
    connections.gatewayIdleMillicores !== undefined
      ? connections.gatewayIdleMillicores / 1000 / connections.streams
      : (wire.idleCpuMillicores['gateway'] ?? 0) / 1000 / a.streamsPerGateway;

  const services: ServiceNeed[] = SERVICES.map((name) => {
    const messageCores = coresFor(micros(name), peak, a.cpuUtilisation);
    if (name !== 'gateway')
      return { name, microsPerMessage: micros(name), cores: messageCores, memoryBytes: 0 };
    const idleCores = (idleCoresPerStream * a.connectedDevices) / a.cpuUtilisation;
    return {
      name,
      microsPerMessage: micros(name),
      cores: messageCores + idleCores,
      memoryBytes: gatewayPods * memoryPerPodBytes,
      pods: gatewayPods,
    };
  });

  // Kafka: every record is written once per replica; a broker takes a share of the measured ceiling.
  const brokerRecordsPerSecond =
    wire.kafkaCeilingRecordsPerSecond * a.kafkaBrokerSpeedup * a.kafkaBrokerUtilisation;
  const brokersForThroughput = up((peak * a.kafkaReplication) / brokerRecordsPerSecond);
  const logBytes = average * a.kafkaRetentionHours * 3600 * wire.kafkaBytesPerRecord * a.kafkaReplication;
  const brokersForDisk = up(logBytes / a.kafkaDiskPerBrokerBytes);
  const brokers = Math.max(a.kafkaReplication, brokersForThroughput, brokersForDisk);
  const relayCores = coresFor(micros('message-relay'), peak, a.cpuUtilisation);
  // At least one partition per relay core (one consumer each), and per the partition's throughput; a multiple of the brokers.
  const partitionsNeeded = Math.max(up(relayCores), up(peak / a.kafkaPartitionMessagesPerSecond));
  const partitions = up(partitionsNeeded / brokers) * brokers;

  // Redis: every message enters and leaves a mailbox; what stays is the offline share for its residence.
  const queuedEnvelopes =
    average * ((1 - a.liveShare) * a.mailboxResidenceHours * 3600 + a.liveShare * a.liveResidenceSeconds);
  const mailboxBytes = queuedEnvelopes * wire.redisBytesPerQueuedEnvelope;
  const presenceBytes = a.connectedDevices * a.presenceBytesPerDevice;
  const redisMicros = micros('redis');
  const mastersForThroughput = up((redisMicros * peak) / 1e6 / a.redisCoreUtilisation);
  const mastersForMemory = up((mailboxBytes + presenceBytes) / a.redisMemoryPerShardBytes);
  const masters = Math.max(1, mastersForThroughput, mastersForMemory);
  const redisNodes = masters * (1 + a.redisReplicasPerMaster);

  const kafkaCores = coresFor(kafkaMicros(wire), peak, a.cpuUtilisation) * a.kafkaReplication;
  const redisCores = redisNodes;
  const postgresCores = coresFor(micros('postgres'), peak, a.cpuUtilisation);
  // Every connected device is registered; devices registered but not connected add to this.
  const postgresStorage = a.connectedDevices * a.directoryBytesPerDevice;

  const totalCores = services.reduce((sum, s) => sum + s.cores, 0) + kafkaCores + redisCores + postgresCores;
  const redisMemory = (mailboxBytes + presenceBytes) * (1 + a.redisReplicasPerMaster);
  const totalMemoryBytes = services.reduce((sum, s) => sum + s.memoryBytes, 0) + redisMemory;
  return {
    averageMessagesPerSecond: average,
    peakMessagesPerSecond: peak,
    services,
    gateway: { pods: gatewayPods, bytesPerStream, memoryPerPodBytes, idleCoresPerStream },
    kafka: {
      cores: kafkaCores,
      brokers,
      brokersForThroughput,
      brokersForDisk,
      partitions,
      logBytes,
      brokerRecordsPerSecond,
    },
    redis: {
      cores: redisCores,
      masters,
      masterMessagesPerSecond: redisMicros === 0 ? Infinity : (1e6 / redisMicros) * a.redisCoreUtilisation,
      mastersForThroughput,
      mastersForMemory,
      nodes: redisNodes,
      queuedEnvelopes,
      mailboxBytes,
      presenceBytes,
      memoryBytes: redisMemory,
    },
    postgres: { cores: postgresCores, storageBytes: postgresStorage },
    totalCores,
    totalMemoryBytes,
  };
}
