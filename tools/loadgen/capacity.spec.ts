import {
  ASSUMPTIONS,
  kafkaMicros,
  marginalMicros,
  planCapacity,
  type Assumptions,
  type ConnectionFigures,
  type WireFigures,
} from './capacity-model';
import { connectionFigures, renderPlan, wireFigures } from './capacity';

// Round figures, so that every number below can be checked by hand.
const assumptions: Assumptions = {
  ...ASSUMPTIONS,
  messagesPerDay: 86_400e6, // 1 million a second on average
  peakFactor: 3,
  connectedDevices: 1e6,
  liveShare: 0.8,
  mailboxResidenceHours: 8,
  liveResidenceSeconds: 1,
  cpuUtilisation: 0.5,
  streamsPerGateway: 20_000,
  kafkaRetentionHours: 24,
  kafkaReplication: 3,
  kafkaBrokerUtilisation: 0.5,
  kafkaBrokerSpeedup: 2,
  kafkaDiskPerBrokerBytes: 8e12,
  kafkaPartitionMessagesPerSecond: 5_000,
  redisReplicasPerMaster: 1,
  redisMemoryPerShardBytes: 25 * 2 ** 30,
  redisCoreUtilisation: 0.5,
  presenceBytesPerDevice: 200,
  directoryBytesPerDevice: 1000,
};

const wire: WireFigures = {
  cpuMicrosPerMessage: {
    gateway: 100,
    'message-relay': 300,
    presence: 10,
    'prekey-directory': 5,
    kafka: 30,
    redis: 20,
    postgres: 2,
  },
  // 300 millicores idle over 3,000 messages a second: 100 µs of each message's 300 is the relay idling.
  idleCpuMillicores: { 'message-relay': 300 },
  devices: 64,
  messagesPerSecond: 3000,
  envelopeBytes: 200,
  kafkaCeilingRecordsPerSecond: 100_000,
  kafkaCeilingBrokerMicrosPerRecord: 40,
  kafkaBytesPerRecord: 300,
  redisBytesPerQueuedEnvelope: 500,
  machine: { cores: 2, loadAverage: 1 },
};

const connections: ConnectionFigures = {
  streams: 20_000,
  rssBytesPerStream: 10_000,
  heapBytesPerStream: 5_000,
  emptyGatewayRssBytes: 100 * 2 ** 20,
  deliveryP99Ms: 500,
  // 20 cores for 20,000 streams: a millicore each.
  gatewayIdleMillicores: 20_000,
  machine: { cores: 2, loadAverage: 1 },
};

describe('the capacity model', () => {
  const plan = planCapacity(wire, connections, assumptions);

  it('turns a day of messages into average and peak rates', () => {
    expect(plan.averageMessagesPerSecond).toBe(1e6);
    expect(plan.peakMessagesPerSecond).toBe(3e6);
  });

  it('gives each service the cores its CPU per message needs at peak, with headroom', () => {
    const cores = Object.fromEntries(plan.services.map((service) => [service.name, service.cores]));
    // 200 µs × 3 M/s = 600 cores busy, at 50% = 1,200.
    expect(cores['message-relay']).toBeCloseTo(1200);
    expect(cores['presence']).toBeCloseTo(60);
    expect(cores['prekey-directory']).toBeCloseTo(30);
    // 600 for messages, and a millicore a stream idle: 1,000 cores for 1 M, at 50% = 2,000.
    expect(cores['gateway']).toBeCloseTo(600 + 2000);
  });

  it('sizes the gateways by streams, each with its empty process and its streams', () => {
    expect(plan.gateway.pods).toBe(50);
    expect(plan.gateway.memoryPerPodBytes).toBe(100 * 2 ** 20 + 20_000 * 10_000);
    expect(plan.services.find((service) => service.name === 'gateway')?.memoryBytes).toBe(
      50 * (100 * 2 ** 20 + 20_000 * 10_000),
    );
  });

  it("counts a process's CPU beyond what it uses idle, and Kafka's at least at its raw cost per record", () => {
    expect(marginalMicros(wire, 'message-relay')).toBeCloseTo(200);
    expect(marginalMicros(wire, 'gateway')).toBe(100);
    expect(marginalMicros({ ...wire, idleCpuMillicores: { gateway: 3000 } }, 'gateway')).toBe(0);
    expect(kafkaMicros(wire)).toBe(40);
    // 40 µs × 3 M/s at 50%, on each of 3 replicas.
    expect(plan.kafka.cores).toBeCloseTo(720);
  });

  it('counts the idle gateway per pod when the streams run did not measure its CPU', () => {
    const { gatewayIdleMillicores: _measured, ...unmeasured } = connections;
    const gateway = planCapacity(
      { ...wire, idleCpuMillicores: { gateway: 100 } },
      unmeasured,
      assumptions,
    ).services.find((service) => service.name === 'gateway');
    // 0.1 core a pod × 50 pods at 50% = 10 cores, beside the 600 for messages (less the idle share: 100 − 33.3 µs).
    expect(gateway?.cores).toBeCloseTo(((100 - 100_000 / 3000) * 3) / 0.5 + 10);
  });

  it('takes Kafka brokers from the raw ceiling, the replication factor and the retained log', () => {
    // Each broker 100,000 × 2 × 0.5 = 100,000 records/s; 3 M/s × 3 replicas = 9 M/s → 90 brokers.
    expect(plan.kafka.brokerRecordsPerSecond).toBe(100_000);
    expect(plan.kafka.brokersForThroughput).toBe(90);
    // 1 M/s × 86,400 s × 300 B × 3 = 77.76 TB on 8 TB disks → 10.
    expect(plan.kafka.logBytes).toBeCloseTo(7.776e13);
    expect(plan.kafka.brokersForDisk).toBe(10);
    expect(plan.kafka.brokers).toBe(90);
    // A partition per relay core (1,200) rounded up to a multiple of the 90 brokers.
    expect(plan.kafka.partitions).toBe(1260);
  });

  it('takes Redis masters from the larger of throughput and mailbox memory', () => {
    // 1 M/s × (20% × 8 h + 80% × 1 s) = 5.7608 billion envelopes waiting.
    expect(plan.redis.queuedEnvelopes).toBeCloseTo(5.7608e9);
    expect(plan.redis.mailboxBytes).toBeCloseTo(5.7608e9 * 500);
    // (2.8804 TB + 200 MB) / 25 GiB = 107.3 → 108; 20 µs × 3 M/s at half a core = 120.
    expect(plan.redis.mastersForMemory).toBe(108);
    expect(plan.redis.mastersForThroughput).toBe(120);
    expect(plan.redis.masters).toBe(120);
    expect(plan.redis.nodes).toBe(240);
    expect(plan.redis.memoryBytes).toBeCloseTo((5.7608e9 * 500 + 2e8) * 2);
  });

  it('costs proportionally less when the CPU per message falls', () => {
    const busy = { ...wire, idleCpuMillicores: {} };
    const full = planCapacity(busy, connections, assumptions);
    const halved = planCapacity(
      {
        ...busy,
        cpuMicrosPerMessage: Object.fromEntries(
          Object.entries(wire.cpuMicrosPerMessage).map(([name, micros]) => [name, micros / 2]),
        ),
      },
      connections,
      assumptions,
    );
    const relay = (p: typeof plan): number => p.services.find((s) => s.name === 'message-relay')?.cores ?? 0;
    expect(relay(halved)).toBeCloseTo(relay(full) / 2);
    expect(halved.totalCores).toBeLessThan(full.totalCores);
  });

  it('prints a table with every component and the published WhatsApp figures beside it', () => {
    const text = renderPlan(plan, wire, connections, assumptions);
    for (const component of ['gateway', 'message-relay', 'Kafka', 'Redis', 'PostgreSQL', '**total**']) {
      expect(text).toContain(`| ${component} |`);
    }
    expect(text).toContain('| WhatsApp 2014 | 64,000,000,000 |');
    expect(text).toContain('90 brokers, 1,260 partitions');
  });
});

describe('reading the reports', () => {
  it('names the field a report lacks', () => {
    expect(() => wireFigures({ cpuMicrosPerMessage: {}, idleCpuMillicores: {} }, 'old.json')).toThrow(
      'old.json: devices is missing',
    );
    expect(() => connectionFigures({ streams: 5 }, 'c.json')).toThrow(
      'c.json: gatewayMemory.rssBytesPerStream is missing',
    );
  });

  it('reads the figures where the load generators write them', () => {
    const figures = wireFigures(
      {
        cpuMicrosPerMessage: { gateway: 1, note: 'x' },
        idleCpuMillicores: { gateway: 2 },
        devices: 64,
        messagesPerSecond: 10,
        envelopeBytes: 200,
        kafkaCeiling: { producer: { recordsPerSecond: 5 } },
        storage: { kafkaBytesPerRecord: 6, redisBytesPerQueuedEnvelope: 7 },
        machine: { cores: 2, loadAverage: 3 },
      },
      'w.json',
    );
    expect(figures.cpuMicrosPerMessage).toEqual({ gateway: 1 });
    expect(figures.kafkaCeilingRecordsPerSecond).toBe(5);
    expect(figures.redisBytesPerQueuedEnvelope).toBe(7);
  });
});
