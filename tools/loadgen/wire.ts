/**
 * The wire load generator: the message path as a server, without client
 * crypto (see measureWire), and in the same run the raw ceiling of the same
 * Kafka broker with Kafka's own ProducerPerformance and ConsumerPerformance
 * (see measureKafkaCeiling), Sotto's throughput given as a share of it.
 *
 *   npm run loadgen:wire -- [--devices 64] [--in-flight 256] [--duration 30] [--size 200] [--rate N]
 *                           [--send stream|unary|sealed] [--warmup S] [--kafka-records 1000000]
 *                           [--server HOST:PORT [--ca FILE]] [--json FILE] [--cpu-prof DIR]
 *   npm run loadgen:wire -- --group N [--senders 4] [--messages M] [--in-flight 8] [--duration 30] [--size 200]
 *                           [--verify] [--warmup S] [--server HOST:PORT [--ca FILE]] [--json FILE]
 *
 * Without --server it starts its own platform as `npm start` runs it (TLS
 * everywhere, rate limits off) and measures the CPU of every process; against
 * a running platform only its own, and no Kafka ceiling (its broker is not
 * known). The report is printed as JSON on stdout, and written to --json FILE.
 * With --rate N the senders start at most N Sends a second between them
 * (open loop, for latency at a given load); without it each sends its next
 * as soon as its last is answered (closed loop, for the most the platform
 * does). --warmup S runs the load S seconds before measuring (default:
 * twice the duration, at most 60), so the broker's JIT compiler (and V8's in
 * the services) has compiled the paths the load takes, as in a server in
 * service; what Kafka's compiler threads spent while measuring is reported
 * apart all the same. (With --group the default is a fifth of the duration,
 * at most 5.)
 * Devices send on their Connect streams, as connected clients do;
 * --send unary has them call the unary Send instead, for comparison; --send sealed has them send
 * as clients send to contacts, by SendSealed without credentials, authorised by each
 * destination's unidentified-access key. With --cpu-prof DIR each service of its own platform writes a V8 CPU
 * profile (<service>.<time>.cpuprofile) into DIR when it stops.
 *
 * With --group N it measures group messages instead (see measureGroup): N members, --senders of
 * them sending each message as one SendMultiRecipient upload to the other N−1, --in-flight
 * uploads at a time, from --messages uploads built with libsignal before the load; then as many
 * copies sent one-to-one, sealed, and the server's CPU per copy and per message of both side by
 * side, under the report's `group` key. --verify has every recipient decrypt its copies and check
 * them (client crypto on the load generator's cores: for small runs). No Kafka ceiling then.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { operatorTls } from '@sotto/stack';
import { measureKafkaCeiling, type KafkaCeiling } from './kafka-ceiling';
import { runLoad, wholeNumber, type OwnPlatform } from './own-platform';
import { measureGroup } from './group-load';
import { measureWire, type SendTransport } from './wire-load';

interface Options {
  readonly devices: number;
  readonly inFlight: number;
  readonly durationSeconds: number;
  readonly size: number;
  readonly ratePerSecond?: number;
  readonly send: SendTransport;
  readonly warmupSeconds?: number;
  readonly kafkaRecords: number;
  readonly server?: string;
  readonly ca?: string;
  readonly jsonFile?: string;
  /** Members of the group, in group mode. */
  readonly group?: number;
  readonly senders?: number;
  readonly messages?: number;
  readonly verify: boolean;
}

/** Most members of a group: the gateway takes up to 1,000 recipients in one upload (MULTI_RECIPIENT_MAX_RECIPIENTS). */
const MAX_GROUP_MEMBERS = 1001;
const GROUP_IN_FLIGHT = 8;

const say = (line: string): void => void process.stderr.write(`[loadgen:wire] ${line}\n`);

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      devices: { type: 'string', default: '64' },
      'in-flight': { type: 'string' },
      duration: { type: 'string', default: '30' },
      size: { type: 'string', default: '200' },
      rate: { type: 'string' },
      send: { type: 'string', default: 'stream' },
      warmup: { type: 'string' },
      'kafka-records': { type: 'string', default: '1000000' },
      server: { type: 'string' },
      ca: { type: 'string' },
      json: { type: 'string' },
      'cpu-prof': { type: 'string' },
      group: { type: 'string' },
      senders: { type: 'string' },
      messages: { type: 'string' },
      verify: { type: 'boolean', default: false },
    },
  });
  const group = values.group === undefined ? undefined : Number(values.group);
  if (group !== undefined && !(Number.isInteger(group) && group >= 2 && group <= MAX_GROUP_MEMBERS)) {
    throw new Error(`--group: expected a whole number from 2 to ${MAX_GROUP_MEMBERS}, got ${values.group}`);
  }
  if (group !== undefined && values.rate !== undefined) throw new Error('--rate: not with --group');
  for (const option of ['senders', 'messages', 'verify'] as const) {
    if (group === undefined && values[option] !== undefined && values[option] !== false) {
      throw new Error(`--${option}: only with --group`);
    }
  }
  const profileDir = values['cpu-prof'];
  if (profileDir !== undefined) {
    if (values.server !== undefined) throw new Error('--cpu-prof: only without --server');
    if (profileDir === '') throw new Error('--cpu-prof: expected a directory');
    mkdirSync(resolve(profileDir), { recursive: true });
    // Read by the service launcher (libs/stack) for each service it starts.
    process.env['SOTTO_CPU_PROF_DIR'] = resolve(profileDir);
  }
  const devices = wholeNumber('devices', values.devices, 10_000);
  if (devices < 2) throw new Error(`--devices: expected a whole number from 2 to 10000, got ${devices}`);
  const size = wholeNumber('size', values.size, 64 * 1024);
  if (size < 8) throw new Error(`--size: expected a whole number from 8 to 65536, got ${size}`);
  if (values.ca !== undefined && values.server === undefined) throw new Error('--ca: only with --server');
  if (values.json === '') throw new Error('--json: expected a file name');
  const send = values.send;
  if (send !== 'stream' && send !== 'unary' && send !== 'sealed') {
    throw new Error(`--send: expected stream, unary or sealed, got ${send}`);
  }
  return {
    devices,
    inFlight:
      values['in-flight'] === undefined
        ? group === undefined
          ? 256
          : GROUP_IN_FLIGHT
        : wholeNumber('in-flight', values['in-flight'], 100_000),
    durationSeconds: wholeNumber('duration', values.duration, 24 * 3600),
    size,
    ...(values.rate === undefined ? {} : { ratePerSecond: wholeNumber('rate', values.rate, 1_000_000) }),
    send,
    ...(values.warmup === undefined ? {} : { warmupSeconds: wholeNumber('warmup', values.warmup, 3600) }),
    kafkaRecords: wholeNumber('kafka-records', values['kafka-records'], 100_000_000),
    server: values.server,
    ca: values.ca,
    jsonFile: values.json,
    group,
    ...(values.senders === undefined
      ? {}
      : { senders: wholeNumber('senders', values.senders, MAX_GROUP_MEMBERS) }),
    ...(values.messages === undefined
      ? {}
      : { messages: wholeNumber('messages', values.messages, 1_000_000) }),
    verify: values.verify,
  };
}

/** The group mode's run: the report under `group`, and a few lines on stderr. */
async function runGroup(
  options: Options & { readonly group: number },
  server: string,
  pids: Record<string, number>,
  ca: string | undefined,
): Promise<object> {
  const group = await measureGroup(
    {
      members: options.group,
      senders: options.senders,
      inFlight: options.inFlight,
      durationSeconds: options.durationSeconds,
      size: options.size,
      messages: options.messages,
      warmupSeconds: options.warmupSeconds,
      verify: options.verify,
    },
    { server, ca, pids },
    say,
  );
  const { oneToOne, comparison } = group;
  say(
    `groups of ${group.members}: ${group.uploadsPerSecond} uploads/s, ${group.copiesPerSecond} copies/s delivered, ` +
      `upload→copy p50/p95/p99 ${group.latencyMs.p50}/${group.latencyMs.p95}/${group.latencyMs.p99} ms; ` +
      `${group.lost} lost, ${group.duplicated} duplicated of ${group.expectedCopies} copies of ${group.accepted} uploads` +
      (group.verified === undefined
        ? ''
        : `; ${group.verified.copies} decrypted, ${group.verified.wrong} wrong`),
  );
  say(
    `one-to-one (sealed): ${oneToOne.copiesPerSecond} copies/s, p50/p95/p99 ${oneToOne.latencyMs.p50}/${oneToOne.latencyMs.p95}/${oneToOne.latencyMs.p99} ms; ` +
      `${oneToOne.lost} lost, ${oneToOne.duplicated} duplicated of ${oneToOne.confirmed}`,
  );
  say(
    `server CPU per copy: ${comparison.serverCpuMicrosPerCopy.group} µs in a group message, ${comparison.serverCpuMicrosPerCopy.oneToOne} µs one-to-one; ` +
      `per message of ${group.copiesPerMessage} copies: ${comparison.serverCpuMicrosPerMessage.group} µs as one upload, ` +
      `${comparison.serverCpuMicrosPerMessage.oneToOne} µs as ${group.copiesPerMessage} sends`,
  );
  say(
    `above idle and without Kafka's JIT: ${comparison.net.serverCpuMicrosPerCopy.group} µs per copy in a group message, ` +
      `${comparison.net.serverCpuMicrosPerCopy.oneToOne} µs one-to-one`,
  );
  say(
    `one ${group.members}-member message costs the server ${comparison.messageCostInOneToOneSends ?? '–'}× a one-to-one send ` +
      `(${comparison.net.messageCostInOneToOneSends ?? '–'}× above idle and without Kafka's JIT; ` +
      `machine load average ${group.machine.loadAverage} on ${group.machine.cores} cores)`,
  );
  return { group };
}

async function run(
  options: Options,
  server: string,
  pids: Record<string, number>,
  ca: string | undefined,
  own: OwnPlatform | undefined,
): Promise<object> {
  if (options.group !== undefined) return runGroup({ ...options, group: options.group }, server, pids, ca);
  const storageTls = own === undefined ? undefined : operatorTls(own.infra.tls);
  const withTls = (server: 'kafka' | 'redis'): typeof storageTls =>
    own?.infra.storageTls?.includes(server) === true ? storageTls : undefined;
  const sotto = await measureWire(
    options,
    {
      server,
      ca,
      pids,
      ...(own === undefined
        ? {}
        : {
            relayMetrics: [own.platform.services['message-relay'].metrics],
            directoryMetrics: [own.platform.services['prekey-directory'].metrics],
            gatewayMetrics: [own.platform.services.gateway.metrics],
          }),
      // Bytes per queued envelope are read from one Redis server; not measured on a cluster.
      ...(own?.infra.redisUrl === undefined
        ? {}
        : {
            storage: {
              kafkaBrokers: own.infra.kafkaBrokers,
              redisUrl: own.infra.redisUrl,
              kafkaTls: withTls('kafka'),
              redisTls: withTls('redis'),
            },
          }),
    },
    say,
  );
  say(
    `Sotto: ${sotto.messagesPerSecond} messages/s delivered, p50/p95/p99 ${sotto.latencyMs.p50}/${sotto.latencyMs.p95}/${sotto.latencyMs.p99} ms, ` +
      `Send answered p50/p99 ${sotto.sendAnsweredMs.p50}/${sotto.sendAnsweredMs.p99} ms, ` +
      `${sotto.cpuMicrosPerMessage['servers'] ?? '–'} µs server CPU per message ` +
      `(${sotto.serverCpuMicrosPerMessageAboveIdle ?? '–'} above the ${sotto.idleCpuMillicores['servers'] ?? '–'} millicores they use idle; ` +
      `${sotto.serverCpuMicrosPerMessageWithoutJvmJit ?? sotto.cpuMicrosPerMessage['servers'] ?? '–'} without Kafka's JIT compiler threads); ` +
      `${sotto.lost} lost, ${sotto.duplicated} duplicated of ${sotto.confirmed} sent ` +
      `(machine load average ${sotto.machine.loadAverage} on ${sotto.machine.cores} cores)`,
  );
  if (sotto.directoryCallsPerThousandMessages !== undefined) {
    const calls = Object.entries(sotto.directoryCallsPerThousandMessages);
    say(
      `directory calls per 1,000 messages: ${calls.length === 0 ? 'none' : calls.map(([method, count]) => `${count} ${method}`).join(', ')}`,
    );
  }
  if (sotto.relayCallsPerThousandMessages !== undefined) {
    const calls = Object.entries(sotto.relayCallsPerThousandMessages);
    say(
      `relay calls per 1,000 messages: ${calls.length === 0 ? 'none' : calls.map(([method, count]) => `${count} ${method}`).join(', ')}`,
    );
  }
  if (sotto.gatewayHeapTrims !== undefined) {
    say(`gateway heap trims from the warm-up's start to the measurement's end: ${sotto.gatewayHeapTrims}`);
  }
  let kafkaCeiling: (KafkaCeiling & { sottoShare: number }) | { skipped: string };
  if (own === undefined) {
    kafkaCeiling = { skipped: 'against --server the broker is not known' };
  } else {
    const kafkaTls = (own.infra.storageTls ?? []).includes('kafka') ? operatorTls(own.infra.tls) : undefined;
    const ceiling = await measureKafkaCeiling(
      {
        brokers: own.infra.kafkaBrokers,
        ...(kafkaTls
          ? { tls: { ca: kafkaTls.ca, identity: { cert: kafkaTls.cert, key: kafkaTls.key } } }
          : {}),
        pid: own.pids['kafka'],
      },
      { records: options.kafkaRecords, recordBytes: options.size },
      say,
    );
    const sottoShare = sotto.messagesPerSecond / ceiling.producer.recordsPerSecond;
    kafkaCeiling = { ...ceiling, sottoShare: Number(sottoShare.toFixed(5)) };
    say(
      `raw Kafka: ${ceiling.producer.recordsPerSecond} records/s produced (acks=all, idempotent), ` +
        `${ceiling.consumer.recordsPerSecond} consumed; Sotto delivers ${(sottoShare * 100).toFixed(2)}% of the producer's rate (1 : ${Math.round(1 / sottoShare)})`,
    );
  }
  return { ...sotto, kafkaCeiling };
}

runLoad(() => parseOptions(process.argv.slice(2)), say, run);
