/**
 * `npm run chaos`: a fault run on a platform of its own whose Kafka is a
 * 3-broker KRaft cluster (the envelope topic at replication factor 3 and
 * min.insync.replicas=2, as the relay creates it there) and whose Redis is a
 * Redis Cluster of 3 masters and 3 replicas (the relay with
 * MAILBOX_DURABILITY=replica unless the environment says otherwise). Under
 * wire load it SIGKILLs, in turn, what --faults names (the message relay,
 * the gateway, a Kafka broker, a Redis master), each --kills times,
 * restarting each, then drains and reports sent, delivered, lost,
 * redelivered (same GUID, which clients drop) and shown twice (a new GUID,
 * which they cannot), and how long each kill took to recover.
 *
 *   npm run chaos -- [--messages 20000] [--kills 2] [--devices 32] [--in-flight 128]
 *                    [--size 200] [--faults relay,gateway,kafka,redis] [--json FILE]
 *
 * The report is printed as JSON on stdout and written to --json FILE
 * (default .sotto/chaos/report.json). Exits 1 on any loss, user-visible
 * duplicate, corruption or kill that did not recover; 2 on bad options.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot } from '@sotto/local-infra';
import { operatorTls } from '@sotto/stack';
import { startOwnPlatform, UsageError, wholeNumber } from '../own-platform';
import { runChaos, type ChaosOptions, type ChaosReport } from './chaos-run';
import { FAULT_NAMES, platformFaults, type FaultName } from './platform-faults';

const say = (line: string): void => void process.stderr.write(`[chaos] ${line}\n`);

/** A comma-separated list of fault names, each once. */
export function parseFaults(text: string): FaultName[] {
  const known = Object.keys(FAULT_NAMES);
  const names = text.split(',').map((name) => name.trim());
  const bad = (): Error =>
    new Error(`--faults: expected a comma-separated list of ${known.join(', ')}, each once, got ${text}`);
  if (names.some((name) => !known.includes(name)) || new Set(names).size !== names.length) throw bad();
  return names as FaultName[];
}

export function parseChaosOptions(
  argv: string[],
): ChaosOptions & { readonly jsonFile: string; readonly faults: readonly FaultName[] } {
  const { values } = parseArgs({
    args: argv,
    options: {
      messages: { type: 'string', default: '20000' },
      kills: { type: 'string', default: '2' },
      devices: { type: 'string', default: '32' },
      'in-flight': { type: 'string', default: '128' },
      size: { type: 'string', default: '200' },
      faults: { type: 'string', default: Object.keys(FAULT_NAMES).join(',') },
      json: { type: 'string', default: join(repoRoot(), '.sotto', 'chaos', 'report.json') },
    },
  });
  const devices = wholeNumber('devices', values.devices, 10_000);
  if (devices < 2) throw new Error(`--devices: expected a whole number from 2 to 10000, got ${devices}`);
  const size = wholeNumber('size', values.size, 64 * 1024);
  if (size < 8) throw new Error(`--size: expected a whole number from 8 to 65536, got ${size}`);
  if (values.json === '') throw new Error('--json: expected a file name');
  return {
    messages: wholeNumber('messages', values.messages, 100_000_000),
    killsPerFault: wholeNumber('kills', values.kills, 100),
    devices,
    inFlight: wholeNumber('in-flight', values['in-flight'], 100_000),
    size,
    faults: parseFaults(values.faults),
    jsonFile: values.json,
  };
}

/** One line a person reads: the counts, and the recovery of each kind of kill. */
export function summary(report: ChaosReport): string {
  const recovery = Object.entries(report.recovery)
    .map(([kind, r]) => `${kind} ×${r.kills} (max ${r.maxMs} ms, mean ${r.meanMs} ms)`)
    .join(', ');
  return (
    `${report.sent} sent, ${report.confirmed} answered, ${report.delivered} delivered, ${report.lost} lost, ` +
    `${report.redelivered} redelivered (dropped by GUID), ${report.shownTwice} shown twice, ${report.unconfirmed} delivered unanswered; ` +
    `kills: ${recovery}`
  );
}

async function main(): Promise<number> {
  let options: ReturnType<typeof parseChaosOptions>;
  try {
    options = parseChaosOptions(process.argv.slice(2));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const onRedisCluster = options.faults.includes('redis');
  // A failover must not lose what Kafka counts as routed: the relay waits for a replica.
  const mailboxDurability = onRedisCluster ? (process.env['MAILBOX_DURABILITY'] ?? 'replica') : undefined;
  const own = await startOwnPlatform(
    say,
    mailboxDurability === undefined ? {} : { 'message-relay': { MAILBOX_DURABILITY: mailboxDurability } },
    { kafkaNodes: 3, redisCluster: onRedisCluster },
  );
  try {
    if (mailboxDurability !== undefined) say(`the relay runs with MAILBOX_DURABILITY=${mailboxDurability}`);
    const faults = platformFaults(own, operatorTls(own.infra.tls), options.faults);
    const report = await runChaos(options, { server: own.platform.gateway, ca: own.ca }, faults, say);
    mkdirSync(dirname(options.jsonFile), { recursive: true });
    writeFileSync(options.jsonFile, `${JSON.stringify(report, null, 2)}\n`);
    say(summary(report));
    say(`report written to ${options.jsonFile}`);
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    for (const problem of report.problems) say(`FAILED: ${problem}`);
    return report.problems.length === 0 ? 0 : 1;
  } finally {
    await own.stop();
  }
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      say((error as Error).message);
      process.exit(error instanceof UsageError ? 2 : 1);
    },
  );
}
