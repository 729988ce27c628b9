/**
 * The wire load generator in small: a few devices for a few seconds against
 * a platform on the harness, then Kafka's own perf tools on its broker; and
 * its command line refusing what it cannot take.
 */
import { spawnSync } from 'node:child_process';
import { operatorTls } from '@sotto/stack';
import { repoRoot, startTestPlatform, testInfra, testTls, type Platform } from '@sotto/testing';
import { measureKafkaCeiling } from './kafka-ceiling';
import { measureWire } from './wire-load';

describe('the wire load generator', () => {
  let platform: Platform | undefined;

  beforeAll(async () => {
    platform = await startTestPlatform();
  });

  afterAll(async () => {
    await platform?.stop();
  });

  it('delivers every envelope it sends exactly once and reports rate, latency and CPU per process', async () => {
    if (platform === undefined) throw new Error('the platform did not start');
    const pids: Record<string, number> = { loadgen: process.pid };
    for (const service of Object.values(platform.services)) pids[service.name] = service.pid;

    const infra = testInfra();
    const operator = operatorTls(infra.tls);
    const withTls = (server: 'kafka' | 'redis'): typeof operator | undefined =>
      (infra.storageTls ?? []).includes(server) ? operator : undefined;
    const report = await measureWire(
      { devices: 4, inFlight: 16, durationSeconds: 3, size: 200, warmupSeconds: 1 },
      {
        server: platform.gateway,
        ca: testTls().ca,
        pids,
        relayMetrics: [platform.services['message-relay'].metrics],
        storage: {
          kafkaBrokers: infra.kafkaBrokers,
          redisUrl: infra.redisUrl,
          kafkaTls: withTls('kafka'),
          redisTls: withTls('redis'),
        },
      },
      () => undefined,
    );

    // Every send (on the Connect streams, by default) answered with a GUID, and every such GUID
    // delivered once, with the bytes sent.
    expect(report).toMatchObject({
      devices: 4,
      inFlight: 16,
      send: 'stream',
      envelopeBytes: 200,
      sendErrors: {},
      lost: 0,
      duplicated: 0,
      unconfirmed: 0,
      corrupted: 0,
    });
    expect(report.sent).toBeGreaterThan(0);
    expect(report.confirmed).toBe(report.sent);
    expect(report.delivered).toBe(report.sent);
    expect(report.measuredDeliveries).toBeGreaterThan(0);
    expect(report.measuredDeliveries).toBeLessThanOrEqual(report.delivered);
    expect(report.messagesPerSecond).toBe(Math.round(report.measuredDeliveries / report.measuredSeconds));
    expect(report.latencyMs.p50).toBeGreaterThan(0);
    expect(report.latencyMs.p50).toBeLessThanOrEqual(report.latencyMs.p95);
    expect(report.latencyMs.p95).toBeLessThanOrEqual(report.latencyMs.p99);
    expect(report.latencyMs.p99).toBeLessThanOrEqual(report.latencyMs.max);
    expect(report.sendAnsweredMs.p50).toBeGreaterThan(0);
    expect(report.sendAnsweredMs.p99).toBeLessThanOrEqual(report.sendAnsweredMs.max);
    expect(report.machine.cores).toBeGreaterThan(0);
    expect(Object.keys(report.cpuMicrosPerMessage).sort()).toEqual(
      [...Object.keys(pids), 'servers', 'total'].sort(),
    );
    expect(Object.keys(report.idleCpuMillicores).sort()).toEqual([...Object.keys(pids), 'servers'].sort());
    expect(report.serverCpuMicrosPerMessageAboveIdle).toBeLessThanOrEqual(
      report.cpuMicrosPerMessage['servers'] ?? 0,
    );
    const { servers, total, loadgen } = report.cpuMicrosPerMessage;
    expect(servers).toBeGreaterThan(0);
    expect(total).toBeCloseTo((servers ?? 0) + (loadgen ?? 0), 0);

    // The gateway's unary calls to the relay behind the stream's sends and acknowledgements, each
    // carrying several: fewer calls than messages.
    const relayCalls = report.relayCallsPerThousandMessages ?? {};
    expect(relayCalls['sendBatch']).toBeGreaterThan(0);
    expect(relayCalls['ackBatch']).toBeGreaterThan(0);
    expect(Object.values(relayCalls).every((perThousand) => perThousand <= 2000)).toBe(true);

    // What an envelope costs the storage: at least its 200 bytes in Kafka's log and in a mailbox, and not ten times that.
    expect(report.storage?.queuedEnvelopes).toBe(1000);
    expect(report.storage?.kafkaRecords).toBeGreaterThanOrEqual(report.sent + 1000);
    for (const bytes of [report.storage?.kafkaBytesPerRecord, report.storage?.redisBytesPerQueuedEnvelope]) {
      expect(bytes).toBeGreaterThan(200);
      expect(bytes).toBeLessThan(2000);
    }
  });

  it("measures the broker's raw ceiling with Kafka's own producer and consumer perf tools", async () => {
    const infra = testInfra();
    const tls = (infra.storageTls ?? []).includes('kafka') ? operatorTls(infra.tls) : undefined;
    const ceiling = await measureKafkaCeiling(
      {
        brokers: infra.kafkaBrokers,
        ...(tls ? { tls: { ca: tls.ca, identity: { cert: tls.cert, key: tls.key } } } : {}),
      },
      { records: 5000, recordBytes: 200 },
      () => undefined,
    );
    expect(ceiling).toMatchObject({ records: 5000, recordBytes: 200 });
    expect(ceiling.topicPartitions).toBeGreaterThan(0);
    expect(ceiling.producer.recordsPerSecond).toBeGreaterThan(0);
    expect(ceiling.producer.latencyMs.p50).toBeLessThanOrEqual(ceiling.producer.latencyMs.p99);
    expect(ceiling.consumer.recordsPerSecond).toBeGreaterThan(0);
  });

  it('paces Sends to --rate: the measured rate stays at it, everything delivered once (by unary Send)', async () => {
    if (platform === undefined) throw new Error('the platform did not start');
    const report = await measureWire(
      {
        devices: 4,
        inFlight: 64,
        durationSeconds: 3,
        size: 200,
        ratePerSecond: 40,
        send: 'unary',
        warmupSeconds: 1,
      },
      { server: platform.gateway, ca: testTls().ca, pids: { loadgen: process.pid } },
      () => undefined,
    );
    expect(report).toMatchObject({
      ratePerSecond: 40,
      send: 'unary',
      sendErrors: {},
      lost: 0,
      duplicated: 0,
    });
    expect(report.confirmed).toBe(report.sent);
    // 64 in flight could send far more than 40 a second; the schedule holds them to about 40.
    expect(report.messagesPerSecond).toBeGreaterThanOrEqual(10);
    expect(report.messagesPerSecond).toBeLessThanOrEqual(48);
  });

  it("sends sealed, as contacts do: no credentials, each destination's access key, every envelope delivered once", async () => {
    if (platform === undefined) throw new Error('the platform did not start');
    const report = await measureWire(
      // The default warm-up: twice the duration (at most 60 s).
      { devices: 4, inFlight: 16, durationSeconds: 3, size: 200, send: 'sealed' },
      { server: platform.gateway, ca: testTls().ca, pids: { loadgen: process.pid } },
      () => undefined,
    );
    expect(report).toMatchObject({
      send: 'sealed',
      warmupSeconds: 6,
      sendErrors: {},
      lost: 0,
      duplicated: 0,
      corrupted: 0,
    });
    expect(report.confirmed).toBe(report.sent);
    expect(report.messagesPerSecond).toBeGreaterThan(0);
  });
});

describe('npm run loadgen:wire', () => {
  it.each([
    [['--devices', '1'], '--devices: expected a whole number from 2 to 10000, got 1'],
    [['--in-flight', 'many'], '--in-flight: expected a whole number from 1 to 100000, got many'],
    [['--duration', '0'], '--duration: expected a whole number from 1 to 86400, got 0'],
    [['--size', '4'], '--size: expected a whole number from 8 to 65536, got 4'],
    [['--rate', '0'], '--rate: expected a whole number from 1 to 1000000, got 0'],
    [['--send', 'websocket'], '--send: expected stream, unary or sealed, got websocket'],
    [['--ca', 'ca.pem'], '--ca: only with --server'],
    [['--frobnicate'], "Unknown option '--frobnicate'"],
  ])('refuses %j with one line and exit code 2', (args, message) => {
    const result = spawnSync(
      process.execPath,
      ['-r', '@swc-node/register', 'tools/loadgen/wire.ts', ...args],
      { cwd: repoRoot(), encoding: 'utf8' },
    );
    expect({ code: result.status, stdout: result.stdout }).toEqual({ code: 2, stdout: '' });
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(message);
  });

  it('is also npm run loadgen -- --wire', () => {
    const result = spawnSync(
      process.execPath,
      ['-r', '@swc-node/register', 'tools/loadgen/main.ts', '--wire', '--devices', '1'],
      { cwd: repoRoot(), encoding: 'utf8' },
    );
    expect({ code: result.status, stderr: result.stderr.trim() }).toEqual({
      code: 2,
      stderr: '[loadgen:wire] --devices: expected a whole number from 2 to 10000, got 1',
    });
  });
});
