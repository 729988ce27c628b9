/**
 * The platform as a server, apart from client crypto: --devices registered
 * devices, each on a connection of its own with its Connect stream open,
 * send opaque envelopes of --size random bytes to each other on those
 * streams (or, with --send unary, by the public gateway's unary Send; with
 * --send sealed, by SendSealed without credentials, each destination's
 * unidentified-access key authorising it, as clients send between contacts),
 * --in-flight at a time in all, and acknowledge
 * every envelope delivered to them. After a warm-up, it measures for
 * --duration seconds: envelopes delivered per second, send→delivered
 * latency, and the CPU each process spent per delivered envelope; then it
 * stops sending, waits for everything sent to arrive, counts what was lost
 * or delivered twice (see DeliveryLedger), and measures an idle spell (what
 * each process uses with every stream open and nothing sent).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { availableParallelism, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import {
  Metadata,
  status,
  type ChannelCredentials,
  type ClientDuplexStream,
  type ServiceError,
} from '@grpc/grpc-js';
import {
  authorizationMetadata,
  gatewayCredentials,
  generateDeviceKeys,
  opaqueSendRequest,
  publicDeviceKeys,
  StreamSender,
  unary,
  type GeneratedDeviceKeys,
} from '@sotto/client-sdk';
import {
  AccountServiceClient,
  MessagingServiceClient,
  type ConnectRequest,
  type ConnectResponse,
  type SendRequest,
  type SendResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { EnvelopeType, type Envelope } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import { cpuSeconds, jvmCompilerSeconds } from './cpu';
import { measureStorage, redisCommandCounts, type StorageReport, type StorageTarget } from './wire-storage';
import { DeliveryLedger, envelopeContent, SEQUENCE_BYTES, type DeliveryCounts } from './wire-ledger';

/**
 * How devices send: on their Connect stream, as a connected client does; by the unary Send; or
 * sealed, by SendSealed on a connection without credentials (as clients send to contacts whose
 * profile key they hold).
 */
export type SendTransport = 'stream' | 'unary' | 'sealed';

export interface WireOptions {
  readonly devices: number;
  readonly inFlight: number;
  readonly durationSeconds: number;
  readonly size: number;
  /** At most this many Sends started a second, over all senders (open loop); unset: each as soon as it may. */
  readonly ratePerSecond?: number;
  /** 'stream' unless told otherwise. */
  readonly send?: SendTransport;
  /**
   * Seconds of load before the measurement starts; unset: twice the duration, at most 60. A broker's
   * JIT compiler spends minutes compiling the paths the load takes (and V8 the services'), a one-off
   * cost a server in service has long paid. The idle spell, after the load, lasts a fifth of the
   * duration, at most 5 s.
   */
  readonly warmupSeconds?: number;
}

export interface WireTarget {
  readonly server: string;
  readonly ca?: string;
  /** Processes whose CPU is measured, by name; `loadgen` is this one. */
  readonly pids: Readonly<Record<string, number>>;
  /** Kafka and Redis under the platform, when known: their bytes per envelope are measured after the load. */
  readonly storage?: StorageTarget;
  /** Where the relays serve /metrics, when known: their Kafka requests and the calls they answered per message are counted. */
  readonly relayMetrics?: readonly string[];
  /** Where the directories serve /metrics, when known: the calls they answered per message are counted. */
  readonly directoryMetrics?: readonly string[];
  /** Where the gateways serve /metrics, when known: their heap trims during the warm-up and the measurement are counted. */
  readonly gatewayMetrics?: readonly string[];
}

/** The gateways' heap trims so far (sotto_gateway_heap_trim_seconds_count), summed; 0 from a gateway without them. */
async function heapTrims(gatewayMetrics: readonly string[]): Promise<number> {
  let trims = 0;
  for (const address of gatewayMetrics) {
    const response = await fetch(`http://${address}/metrics`);
    if (!response.ok) throw new Error(`http://${address}/metrics answered ${response.status}`);
    const text = await response.text();
    trims += Number(/^sotto_gateway_heap_trim_seconds_count(?:\{[^}]*\})? (\S+)$/m.exec(text)?.[1] ?? 0);
  }
  return trims;
}

/** The gRPC calls services answered (sotto_grpc_server_handled_total), summed over the services and codes, by method. */
async function answeredCalls(metrics: readonly string[]): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const address of metrics) {
    const text = await (await fetch(`http://${address}/metrics`)).text();
    for (const line of text.split('\n')) {
      const match = /^sotto_grpc_server_handled_total\{([^}]*)\} (\S+)$/.exec(line);
      if (!match?.[1] || match[2] === undefined) continue;
      const method = /grpc_method="(?:[^".]*\.)?([^"]*)"/.exec(match[1])?.[1] ?? '?';
      counts.set(method, (counts.get(method) ?? 0) + Number(match[2]));
    }
  }
  return counts;
}

/** The relays' sotto_kafka_requests_total, summed over relays, by "client api" (say, "producer Produce"). */
async function kafkaRequests(relayMetrics: readonly string[]): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const address of relayMetrics) {
    const text = await (await fetch(`http://${address}/metrics`)).text();
    for (const line of text.split('\n')) {
      const match = /^sotto_kafka_requests_total\{([^}]*)\} (\S+)$/.exec(line);
      if (!match?.[1] || match[2] === undefined) continue;
      const client = /client="([^"]*)"/.exec(match[1])?.[1] ?? '?';
      const api = /api="([^"]*)"/.exec(match[1])?.[1] ?? '?';
      const key = `${client} ${api}`;
      counts.set(key, (counts.get(key) ?? 0) + Number(match[2]));
    }
  }
  return counts;
}

export interface Percentiles {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}

export interface WireReport extends DeliveryCounts {
  readonly devices: number;
  readonly inFlight: number;
  /** How the devices sent. */
  readonly send: SendTransport;
  /** The Sends a second asked for (--rate), when they were paced. */
  readonly ratePerSecond?: number;
  readonly envelopeBytes: number;
  readonly warmupSeconds: number;
  readonly measuredSeconds: number;
  /** Envelopes delivered during the measured seconds. */
  readonly measuredDeliveries: number;
  readonly messagesPerSecond: number;
  /** Send→delivered, of the envelopes delivered in the measured seconds. */
  readonly latencyMs: Percentiles;
  /** Send→answered (Kafka holds the envelope), of the Sends answered in the measured seconds. */
  readonly sendAnsweredMs: Percentiles;
  /** What else the machine was doing: its cores, and its load average over the minute before the measurement. */
  readonly machine: { readonly cores: number; readonly loadAverage: number };
  /**
   * CPU microseconds per envelope delivered in the measured seconds, for each
   * process, for the servers together (every process but this one) and for all.
   */
  readonly cpuMicrosPerMessage: Record<string, number>;
  /**
   * CPU each process used, in thousandths of a core, over as many seconds as
   * the warm-up with every stream open before anything was sent.
   */
  readonly idleCpuMillicores: Record<string, number>;
  /**
   * The servers' CPU per message less what they would have used idle over
   * the measured seconds; absent when only this process is measured.
   */
  readonly serverCpuMicrosPerMessageAboveIdle?: number;
  /**
   * Of cpuMicrosPerMessage, what each JVM (Kafka) spent in its just-in-time
   * compiler threads: a one-off of a broker's first minutes, not a cost of
   * the messages; only processes that used any are listed.
   */
  readonly jvmJitCpuMicrosPerMessage?: Record<string, number>;
  /** The servers' CPU per message without the JVMs' compiler threads: what a warmed-up broker costs. */
  readonly serverCpuMicrosPerMessageWithoutJvmJit?: number;
  /** Bytes per envelope in Kafka's log and in a Redis mailbox (see measureStorage). */
  readonly storage?: StorageReport;
  /**
   * Requests the relays sent to Kafka per 1,000 envelopes delivered in the
   * measured seconds, by client and API ("producer Produce", "consumer Fetch", …).
   */
  readonly kafkaRequestsPerThousandMessages?: Record<string, number>;
  /**
   * Calls the directory answered per 1,000 envelopes delivered in the measured seconds, by method
   * ("authenticate", "getUnidentifiedAccessBatch", …), most first.
   */
  readonly directoryCallsPerThousandMessages?: Record<string, number>;
  /**
   * Calls the relay answered per 1,000 envelopes delivered in the measured seconds, by method
   * ("sendBatch", "ackBatch", …), most first: each is a unary call from a gateway, whatever it carries.
   */
  readonly relayCallsPerThousandMessages?: Record<string, number>;
  /**
   * Redis commands per 1,000 delivered messages, by name, most first (commands that scripts run
   * are counted too, under their own names, besides the EVALSHA that ran them).
   */
  readonly redisCommandsPerThousandMessages?: Record<string, number>;
  /**
   * Heap trims the gateways ran from the warm-up's start to the measurement's end: each pauses
   * its gateway, and a quiet gateway alone trims, so under load this is 0.
   */
  readonly gatewayHeapTrims?: number;
}

/** Longest wait, after sending stops, for a further envelope to arrive before the rest count as lost. */
const DRAIN_QUIET_MS = 15_000;
const CALL_DEADLINE_MS = 60_000;
/** How long a sending loop waits after a failed Send before its next. */
const FAILED_SEND_PAUSE_MS = 100;

export interface Device {
  readonly index: number;
  readonly accountId: string;
  readonly registrationId: number;
  readonly auth: Metadata;
  /** The keys it registered with, private ones included (the group mode decrypts with them). */
  readonly keys: GeneratedDeviceKeys;
  readonly messaging: MessagingServiceClient;
  /** The unidentified-access key the device's account set, with --send sealed. */
  accessKey?: Buffer;
  /** Its connection without credentials, for SendSealed, with --send sealed. */
  sealed?: MessagingServiceClient;
  stream?: ClientDuplexStream<ConnectRequest, ConnectResponse>;
  /** Sends on `stream`. */
  sender?: StreamSender;
}

export const round = (value: number, digits = 1): number => Number(value.toFixed(digits));

export function percentiles(values: readonly number[]): Percentiles {
  const sorted = Float64Array.from(values).sort();
  const at = (p: number): number =>
    round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0);
  return { p50: at(50), p95: at(95), p99: at(99), max: round(sorted[sorted.length - 1] ?? 0) };
}

export function codeName(error: unknown): string {
  const code = (error as Partial<ServiceError>).code;
  return code === undefined ? 'CLIENT' : (status[code] ?? String(code));
}

/** Registers devices a few at a time, each with a connection of its own to the gateway. */
export async function registerDevices(
  count: number,
  server: string,
  tls: ChannelCredentials,
): Promise<Device[]> {
  const accounts = new AccountServiceClient(server, tls);
  const tag = randomUUID().replace(/-/g, '').slice(0, 8);
  const devices: Device[] = [];
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: Math.min(8, count) }, async () => {
        while (next < count) {
          const index = next++;
          const keys = generateDeviceKeys(1);
          const registered = await unary(
            accounts.register.bind(accounts),
            {
              username: `lgw_${tag}_${index}`,
              identityKey: Buffer.from(keys.identity.publicKey.serialize()),
              device: publicDeviceKeys(keys),
            },
            { deadlineMs: CALL_DEADLINE_MS },
          );
          const auth = authorizationMetadata(registered);
          devices[index] = {
            index,
            accountId: registered.accountId,
            registrationId: keys.registrationId,
            auth,
            keys,
            // A connection per device, as phones have: grpc-js would otherwise share one.
            messaging: new MessagingServiceClient(server, tls, { 'grpc.use_local_subchannel_pool': 1 }),
          };
        }
      }),
    );
  } finally {
    accounts.close();
  }
  return devices;
}

/**
 * Gives each device's account a random unidentified-access key (a client derives it from its
 * profile key), and each device a second connection without credentials to send sealed on.
 */
export async function setAccessKeys(
  devices: readonly Device[],
  server: string,
  tls: ChannelCredentials,
): Promise<void> {
  const accounts = new AccountServiceClient(server, tls);
  try {
    for (const device of devices) {
      const accessKey = randomBytes(16);
      await unary(
        accounts.setUnidentifiedAccess.bind(accounts),
        { unidentifiedAccessKey: accessKey, unrestrictedUnidentifiedAccess: false },
        { metadata: device.auth, deadlineMs: CALL_DEADLINE_MS },
      );
      device.accessKey = accessKey;
      device.sealed = new MessagingServiceClient(server, tls, { 'grpc.use_local_subchannel_pool': 1 });
    }
  } finally {
    accounts.close();
  }
}

/**
 * `request` (to `destination`) sent by `device` as clients send to contacts: by SendSealed on its
 * connection without credentials, the destination's unidentified-access key authorising it.
 */
export function sendSealed(device: Device, destination: Device, request: SendRequest): Promise<SendResponse> {
  if (device.sealed === undefined || destination.accessKey === undefined) {
    throw new Error(`device ${device.index} cannot send sealed to ${destination.accountId}`);
  }
  return unary(
    device.sealed.sendSealed.bind(device.sealed),
    {
      destinationAccountId: request.destinationAccountId,
      clientTimestampMs: request.clientTimestampMs,
      ephemeral: request.ephemeral,
      envelopes: request.envelopes.map((envelope) => ({
        ...envelope,
        type: EnvelopeType.ENVELOPE_TYPE_UNIDENTIFIED_SENDER,
      })),
      unidentifiedAccessKey: destination.accessKey,
    },
    { deadlineMs: CALL_DEADLINE_MS },
  );
}

/**
 * Opens each device's Connect stream (with a StreamSender on it), hands every envelope delivered
 * to `delivered` and acknowledges it, in batches of what one turn of the event loop received.
 * `ready` resolves once every stream has reported its queue empty; `failed` rejects when a
 * stream fails or a device is displaced (never resolves).
 */
export function openConnectStreams(
  devices: readonly Device[],
  delivered: (device: Device, envelope: Envelope) => void,
): { ready: Promise<void>; failed: Promise<never> } {
  let streamFailure: Error | undefined;
  let failStreams!: (error: Error) => void;
  const failed = new Promise<never>((_, reject) => (failStreams = reject));
  failed.catch(() => undefined);
  const ready = Promise.all(
    devices.map(
      (device) =>
        new Promise<void>((resolve, reject) => {
          const stream = device.messaging.connect(device.auth);
          device.stream = stream;
          device.sender = new StreamSender(stream);
          let acks: string[] = [];
          const flush = (): void => {
            stream.write({ ack: { guids: acks } });
            acks = [];
          };
          stream.on('data', (message: ConnectResponse) => {
            if (message.envelope !== undefined) {
              delivered(device, message.envelope);
              if (acks.length === 0) setImmediate(flush);
              acks.push(message.envelope.guid);
            } else if (message.queueEmpty !== undefined) {
              resolve();
            } else if (message.displaced !== undefined) {
              reject(new Error(`device ${device.index}: displaced by another Connect`));
            }
          });
          stream.on('error', (error: Error) => {
            if (codeName(error) === 'CANCELLED') return;
            streamFailure ??= new Error(`device ${device.index}'s Connect stream failed: ${error.message}`);
            reject(streamFailure);
            failStreams(streamFailure);
          });
        }),
    ),
  ).then(() => undefined);
  return { ready, failed };
}

export async function measureWire(
  options: WireOptions,
  target: WireTarget,
  say: (line: string) => void,
): Promise<WireReport> {
  if (options.devices < 2) throw new Error('--devices: at least 2, to send to each other');
  if (options.size < SEQUENCE_BYTES) throw new Error(`--size: at least ${SEQUENCE_BYTES} bytes`);
  const tls = gatewayCredentials(target.server, { ca: target.ca });
  const transport = options.send ?? 'stream';
  /** One Send of `device`, as --send says. */
  const send = (device: Device, request: SendRequest): Promise<SendResponse> => {
    if (transport === 'unary') {
      return unary(device.messaging.send.bind(device.messaging), request, {
        metadata: device.auth,
        deadlineMs: CALL_DEADLINE_MS,
      });
    }
    if (transport === 'sealed') {
      const destination = byAccount.get(request.destinationAccountId);
      if (destination === undefined) throw new Error(`no device of ${request.destinationAccountId}`);
      return sendSealed(device, destination, request);
    }
    if (device.sender === undefined) throw new Error(`device ${device.index} has no Connect stream`);
    return device.sender.send(request, { deadlineMs: CALL_DEADLINE_MS });
  };
  say(`registering ${options.devices} devices`);
  const devices = await registerDevices(options.devices, target.server, tls);
  const byAccount = new Map(devices.map((device) => [device.accountId, device]));
  if (transport === 'sealed') {
    say('setting an unidentified-access key for each account');
    await setAccessKeys(devices, target.server, tls);
  }
  const filler = randomBytes(options.size);
  const book = new DeliveryLedger(filler);

  let measuring = false;
  const latencies: number[] = [];
  const answerTimes: number[] = [];
  let measuredDeliveries = 0;
  let lastDelivery = performance.now();

  try {
    say(`opening ${options.devices} Connect streams`);
    const streams = openConnectStreams(devices, (_, envelope) => {
      const now = performance.now();
      lastDelivery = now;
      const latency = book.delivered(envelope.guid, envelope.content, now);
      if (measuring && latency !== undefined) {
        latencies.push(latency);
        measuredDeliveries++;
      }
    });
    const streamFailed = streams.failed;
    await streams.ready;

    const wait = (seconds: number): Promise<void> =>
      Promise.race([new Promise<void>((resolve) => setTimeout(resolve, seconds * 1000)), streamFailed]);
    const idleSpellSeconds = Math.min(5, options.durationSeconds / 5);
    const warmupSeconds = options.warmupSeconds ?? Math.min(60, 2 * options.durationSeconds);
    const trimsBefore = target.gatewayMetrics && (await heapTrims(target.gatewayMetrics));
    let sending = true;
    const sendOne = async (sender: Device, sequenceOffset: number): Promise<void> => {
      const destination =
        devices[(sender.index + 1 + (sequenceOffset % (devices.length - 1))) % devices.length];
      if (destination === undefined) throw new Error('no destination device');
      const sentAt = performance.now();
      const sequence = book.sending(sentAt);
      const request = opaqueSendRequest(destination, envelopeContent(sequence, filler));
      try {
        const answer = await send(sender, request);
        if (measuring) answerTimes.push(performance.now() - sentAt);
        const guid = answer.guids[0];
        if (guid === undefined) book.failed('NO_GUID');
        else book.confirmed(sequence, guid);
      } catch (error) {
        book.failed(codeName(error));
        // A platform refusing or gone is counted, not hammered.
        await new Promise((resolve) => setTimeout(resolve, FAILED_SEND_PAUSE_MS));
      }
    };
    // With a rate, Sends start on a schedule shared by the senders, one every 1/rate s; a sender
    // takes the next free start and waits for it, so at most --in-flight are outstanding.
    const interval = options.ratePerSecond === undefined ? 0 : 1000 / options.ratePerSecond;
    let nextStart = performance.now();
    const paced = async (): Promise<void> => {
      if (interval === 0) return;
      const start = Math.max(nextStart, performance.now());
      nextStart = start + interval;
      const wait = start - performance.now();
      if (wait >= 1) await new Promise((resolve) => setTimeout(resolve, wait));
    };
    // --in-flight loops, spread over the devices as senders; each sends its next envelope when the last is answered.
    const senders = Array.from({ length: options.inFlight }, async (_, slot) => {
      const sender = devices[slot % devices.length];
      if (sender === undefined) return;
      for (let turn = Math.floor(slot / devices.length); sending; turn++) {
        await paced();
        if (!sending) return;
        await sendOne(sender, turn);
      }
    });

    say(
      `sending ${options.size}-byte envelopes ${{ stream: 'on the Connect streams', unary: 'by unary Send', sealed: 'sealed, by SendSealed' }[transport]}, ${options.inFlight} in flight` +
        `${options.ratePerSecond === undefined ? '' : ` at most, ${options.ratePerSecond} a second`}: ` +
        `${round(warmupSeconds)} s warm-up, then ${options.durationSeconds} s measured`,
    );
    await wait(warmupSeconds);
    const loadAverage = loadavg()[0] ?? 0;
    const requestsBefore = target.relayMetrics && (await kafkaRequests(target.relayMetrics));
    const directoryBefore = target.directoryMetrics && (await answeredCalls(target.directoryMetrics));
    const relayCallsBefore = target.relayMetrics && (await answeredCalls(target.relayMetrics));
    const redisBefore = target.storage && (await redisCommandCounts(target.storage));
    const cpuBefore = cpuSeconds(target.pids);
    const jitBefore = jvmCompilerSeconds(target.pids);
    const started = performance.now();
    measuring = true;
    await wait(options.durationSeconds);
    measuring = false;
    const measuredSeconds = (performance.now() - started) / 1000;
    const cpuAfter = cpuSeconds(target.pids);
    const jitAfter = jvmCompilerSeconds(target.pids);
    const requestsAfter = target.relayMetrics && (await kafkaRequests(target.relayMetrics));
    const directoryAfter = target.directoryMetrics && (await answeredCalls(target.directoryMetrics));
    const relayCallsAfter = target.relayMetrics && (await answeredCalls(target.relayMetrics));
    const redisAfter = target.storage && (await redisCommandCounts(target.storage));
    const trimsAfter = target.gatewayMetrics && (await heapTrims(target.gatewayMetrics));
    sending = false;

    say('sending stopped; waiting for everything sent to be delivered');
    await Promise.race([Promise.all(senders), streamFailed]);
    await Promise.race([
      book.whenComplete(),
      streamFailed,
      new Promise<void>((resolve) => {
        const quiet = setInterval(() => {
          if (book.complete || performance.now() - lastDelivery > DRAIN_QUIET_MS) {
            clearInterval(quiet);
            resolve();
          }
        }, 250);
      }),
    ]);

    // What the processes spend with every stream open and nothing sent, to tell the per-message cost
    // from the fixed one: measured warm, after the load (and a second for its last acknowledgements),
    // as a server in service idles. Just after start a broker is still compiling its start-up paths.
    await wait(1);
    say(`${round(idleSpellSeconds)} s idle, every stream open`);
    const idleBefore = cpuSeconds(target.pids);
    const idleStarted = performance.now();
    await wait(idleSpellSeconds);
    const idleSeconds = (performance.now() - idleStarted) / 1000;
    const idleAfter = cpuSeconds(target.pids);

    let storage: StorageReport | undefined;
    const [storageSender] = devices;
    if (target.storage !== undefined && storageSender !== undefined) {
      say("measuring bytes per envelope in Kafka and in an offline device's Redis mailbox");
      // A device registered now, that never connects: nothing takes envelopes out of its
      // mailbox. (One of the load's devices would do only once its stream is closed and its
      // last acknowledgements have reached Redis, and nothing says when that is.)
      const [offline] = await registerDevices(1, target.server, tls);
      if (offline === undefined) throw new Error('could not register the offline device');
      offline.messaging.close();
      if (transport === 'sealed') {
        // Sealed sends to it need its access key, as to any load device.
        await setAccessKeys([offline], target.server, tls);
        byAccount.set(offline.accountId, offline);
      }
      storage = await measureStorage(
        target.storage,
        { accountId: offline.accountId, deviceId: 1 },
        { count: 1000, envelopeBytes: options.size },
        async (count) => {
          let left = count;
          await Promise.all(
            Array.from({ length: 50 }, async () => {
              while (left > 0) {
                left--;
                await send(storageSender, opaqueSendRequest(offline, randomBytes(options.size)));
              }
            }),
          );
        },
      );
      offline.sealed?.close();
      say(
        `${storage.kafkaBytesPerRecord} bytes per record in Kafka's log, ${storage.redisBytesPerQueuedEnvelope} bytes of Redis per queued envelope`,
      );
    }
    const perMessage = (seconds: number): number =>
      measuredDeliveries === 0 ? 0 : round((seconds * 1e6) / measuredDeliveries);
    const between = (before: Record<string, number>, after: Record<string, number>): Record<string, number> =>
      Object.fromEntries(
        Object.keys(target.pids).map((name) => [name, (after[name] ?? 0) - (before[name] ?? 0)]),
      );
    const serversOf = (seconds: Record<string, number>): number =>
      Object.entries(seconds)
        .filter(([name]) => name !== 'loadgen')
        .reduce((sum, [, value]) => sum + value, 0);
    const used = between(cpuBefore, cpuAfter);
    const idle = between(idleBefore, idleAfter);
    const servers = serversOf(used);
    const all = Object.values(used).reduce((sum, seconds) => sum + seconds, 0);
    const serversIdle = serversOf(idle);
    const jit = Object.fromEntries(
      Object.entries(between(jitBefore, jitAfter)).filter(([, seconds]) => seconds > 0),
    );
    const millicores = (seconds: number): number => Math.round((seconds * 1000) / idleSeconds);
    // The rates from the seconds as reported, so that the report's own figures agree.
    const reportedSeconds = round(measuredSeconds, 3);
    return {
      devices: options.devices,
      inFlight: options.inFlight,
      send: transport,
      envelopeBytes: options.size,
      ...(options.ratePerSecond === undefined ? {} : { ratePerSecond: options.ratePerSecond }),
      warmupSeconds: round(warmupSeconds),
      measuredSeconds: reportedSeconds,
      measuredDeliveries,
      messagesPerSecond: Math.round(measuredDeliveries / reportedSeconds),
      latencyMs: percentiles(latencies),
      sendAnsweredMs: percentiles(answerTimes),
      machine: { cores: availableParallelism(), loadAverage: round(loadAverage, 2) },
      ...book.counts(),
      cpuMicrosPerMessage: {
        ...Object.fromEntries(Object.entries(used).map(([name, seconds]) => [name, perMessage(seconds)])),
        ...(Object.keys(used).length > 1 ? { servers: perMessage(servers) } : {}),
        total: perMessage(all),
      },
      idleCpuMillicores: {
        ...Object.fromEntries(Object.entries(idle).map(([name, seconds]) => [name, millicores(seconds)])),
        ...(Object.keys(idle).length > 1 ? { servers: millicores(serversIdle) } : {}),
      },
      ...(Object.keys(used).length > 1
        ? {
            serverCpuMicrosPerMessageAboveIdle: perMessage(
              Math.max(0, servers - (serversIdle / idleSeconds) * measuredSeconds),
            ),
          }
        : {}),
      ...(Object.keys(jit).length > 0
        ? {
            jvmJitCpuMicrosPerMessage: Object.fromEntries(
              Object.entries(jit).map(([name, seconds]) => [name, perMessage(seconds)]),
            ),
            serverCpuMicrosPerMessageWithoutJvmJit: perMessage(servers - serversOf(jit)),
          }
        : {}),
      ...(storage === undefined ? {} : { storage }),
      ...perThousandMessages(
        'kafkaRequestsPerThousandMessages',
        requestsBefore,
        requestsAfter,
        measuredDeliveries,
      ),
      ...perThousandMessages(
        'directoryCallsPerThousandMessages',
        directoryBefore,
        directoryAfter,
        measuredDeliveries,
      ),
      ...perThousandMessages(
        'relayCallsPerThousandMessages',
        relayCallsBefore,
        relayCallsAfter,
        measuredDeliveries,
      ),
      ...perThousandMessages('redisCommandsPerThousandMessages', redisBefore, redisAfter, measuredDeliveries),
      ...(trimsBefore === undefined || trimsAfter === undefined
        ? {}
        : { gatewayHeapTrims: trimsAfter - trimsBefore }),
    };
  } finally {
    for (const device of devices) {
      device.stream?.cancel();
      device.messaging.close();
      device.sealed?.close();
    }
  }
}

/**
 * `{ [key]: counts }`: how much each count grew between two readings, per 1,000 delivered messages,
 * largest first, leaving out those that did not grow; `{}` when either reading is missing or nothing
 * was delivered.
 */
function perThousandMessages<K extends string>(
  key: K,
  before: ReadonlyMap<string, number> | undefined,
  after: ReadonlyMap<string, number> | undefined,
  delivered: number,
): Partial<Record<K, Record<string, number>>> {
  if (before === undefined || after === undefined || delivered <= 0) return {};
  const grown = [...after]
    .map(([name, count]): [string, number] => [
      name,
      round(((count - (before.get(name) ?? 0)) * 1000) / delivered, 1),
    ])
    .filter(([, perThousand]) => perThousand > 0)
    .sort(([, a], [, b]) => b - a);
  return { [key]: Object.fromEntries(grown) } as Partial<Record<K, Record<string, number>>>;
}
