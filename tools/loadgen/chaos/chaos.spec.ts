/**
 * `npm run chaos` in small, as CI runs it: a platform on a 3-broker Kafka
 * cluster and a Redis Cluster of 3 masters and 3 replicas (the relay waiting
 * for a replica before it commits, MAILBOX_DURABILITY=replica), a few
 * thousand envelopes through the public gateway, and one SIGKILL each of the
 * relay, the gateway, a broker and a Redis master; nothing answered is lost
 * and nothing is shown twice.
 */
import { spawnSync } from 'node:child_process';
import { ConfigResourceTypes, Kafka, logLevel } from 'kafkajs';
import { envelopesTopic } from '@sotto/contracts';
import { clientTlsOptions, repoRoot } from '@sotto/local-infra';
import { operatorTls, startScratchPlatform, type ScratchPlatform } from '@sotto/stack';
import { killSchedule, runChaos } from './chaos-run';
import { platformFaults } from './platform-faults';

describe('a fault run on a 3-broker cluster', () => {
  let own: ScratchPlatform | undefined;

  beforeAll(async () => {
    own = await startScratchPlatform(
      'sotto-chaos-spec',
      () => undefined,
      { 'message-relay': { MAILBOX_DURABILITY: 'replica' } },
      { kafkaNodes: 3, redisCluster: true },
    );
  });

  afterAll(async () => {
    await own?.stop();
  });

  it('has the relay create the envelope topic with three replicas, two of them needed for a write', async () => {
    if (own === undefined) throw new Error('the platform did not start');
    const admin = new Kafka({
      clientId: 'chaos-spec',
      brokers: [...own.infra.kafkaBrokers],
      logLevel: logLevel.NOTHING,
      ssl: clientTlsOptions(operatorTls(own.infra.tls)),
    }).admin();
    await admin.connect();
    try {
      const metadata = await admin.fetchTopicMetadata({ topics: [envelopesTopic.TOPIC] });
      const partitions = metadata.topics[0]?.partitions ?? [];
      expect(partitions.length).toBeGreaterThan(0);
      for (const partition of partitions) expect(partition.replicas).toHaveLength(3);
      const configs = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [
          {
            type: ConfigResourceTypes.TOPIC,
            name: envelopesTopic.TOPIC,
            configNames: ['min.insync.replicas'],
          },
        ],
      });
      expect(configs.resources[0]?.configEntries[0]?.configValue).toBe('2');
    } finally {
      await admin.disconnect();
    }
  });

  it('loses nothing and shows nothing twice while the relay, the gateway, a broker and a Redis master are killed', async () => {
    if (own === undefined) throw new Error('the platform did not start');
    const options = { messages: 4000, killsPerFault: 1, devices: 8, inFlight: 32, size: 200 };
    const report = await runChaos(
      options,
      { server: own.platform.gateway, ca: own.ca },
      platformFaults(own, operatorTls(own.infra.tls), ['relay', 'gateway', 'kafka', 'redis']),
      () => undefined,
    );
    expect(report.kills.map((kill) => kill.kind)).toEqual([
      'message-relay',
      'gateway',
      'kafka-broker',
      'redis-master',
    ]);
    // The killed master's replica serves its slots now, and the old master is back as its replica.
    const victim = /redis master (\S+)/.exec(report.kills[3]?.victim ?? '')?.[1];
    expect(victim).toBeDefined();
    expect(await own.redisCluster?.masters()).not.toContain(victim);
    for (const kill of report.kills) expect(kill.recoveryMs).toBeGreaterThan(0);
    // The gateway's kill broke every stream, which the devices opened again.
    expect(report.reconnects).toBeGreaterThanOrEqual(options.devices);
    expect(report.confirmed).toBeGreaterThanOrEqual(options.messages);
    expect(report).toMatchObject({ lost: 0, shownTwice: 0, corrupted: 0, problems: [] });
    expect(report.delivered).toBeGreaterThanOrEqual(report.confirmed);
  });
});

describe('killSchedule', () => {
  it('kills each in turn, round after round, spread evenly over the run', () => {
    expect(killSchedule(['relay', 'gateway', 'broker'], 2, 7000)).toEqual([
      { kind: 'relay', atMessage: 1000 },
      { kind: 'gateway', atMessage: 2000 },
      { kind: 'broker', atMessage: 3000 },
      { kind: 'relay', atMessage: 4000 },
      { kind: 'gateway', atMessage: 5000 },
      { kind: 'broker', atMessage: 6000 },
    ]);
  });
});

describe('npm run chaos', () => {
  it.each([
    [['--messages', '0'], '--messages: expected a whole number from 1 to 100000000, got 0'],
    [['--kills', 'x'], '--kills: expected a whole number from 1 to 100, got x'],
    [['--devices', '1'], '--devices: expected a whole number from 2 to 10000, got 1'],
    [['--json', ''], '--json: expected a file name'],
    [
      ['--faults', 'relay,redis,relay'],
      '--faults: expected a comma-separated list of relay, gateway, kafka, redis, each once, got relay,redis,relay',
    ],
    [
      ['--faults', 'postgres'],
      '--faults: expected a comma-separated list of relay, gateway, kafka, redis, each once, got postgres',
    ],
    [['--frobnicate'], "Unknown option '--frobnicate'"],
  ])('refuses %j with one line and exit code 2, before starting anything', (args, message) => {
    const result = spawnSync(
      process.execPath,
      ['-r', '@swc-node/register', 'tools/loadgen/chaos/main.ts', ...args],
      {
        cwd: repoRoot(),
        encoding: 'utf8',
      },
    );
    expect({ code: result.status, stdout: result.stdout }).toEqual({ code: 2, stdout: '' });
    expect(result.stderr.trim()).toBe(`[chaos] ${message}`);
  });
});
