/**
 * What an idle Connect stream costs a gateway: --streams registered devices
 * each hold one open (acknowledging as the SDK does), --streams-per-channel
 * to a client connection (a gateway takes at most 100 on one; a load
 * generator is not 20,000 phones), through --hold-seconds of heartbeats.
 * The gateway's resident memory and V8 heap used, from its /metrics, before
 * the streams and with them, give the memory per stream; then one envelope
 * each to --sample devices picked at random, sent together through the
 * public Send, gives the time from Send to arrival.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { ChannelCredentials, ClientDuplexStream, Metadata } from '@grpc/grpc-js';
import { cpuSeconds } from './cpu';
import {
  authorizationMetadata,
  gatewayCredentials,
  generateDeviceKeys,
  opaqueSendRequest,
  publicDeviceKeys,
  unary,
} from '@sotto/client-sdk';
import {
  AccountServiceClient,
  MessagingServiceClient,
  type ConnectRequest,
  type ConnectResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';

export interface StreamsOptions {
  readonly streams: number;
  readonly streamsPerChannel: number;
  readonly sample: number;
  readonly holdSeconds: number;
}

export interface StreamsTarget {
  readonly server: string;
  readonly ca?: string;
  /** The gateway's /metrics address (host:port), when known. */
  readonly gatewayMetrics?: string;
  /** The gateway's process, when this machine runs it: its CPU while holding the streams is measured. */
  readonly gatewayPid?: number;
  /** Have the gateway write heap snapshots (SIGUSR2; see SOTTO_HEAP_SNAPSHOT_DIR). */
  readonly heapSnapshots?: boolean;
}

export interface GatewayMemory {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  /**
   * V8's young generation (new space): its size, and what is allocated in it. It grows under load
   * up to the process's --max-semi-space-size whatever the streams, and what it holds is mostly
   * garbage not yet scavenged: a fixed cost of the process, not of the streams.
   */
  readonly youngGenerationBytes: number;
  readonly youngGenerationUsedBytes: number;
  /** The V8 heap as committed (heap total), used or not: V8 keeps what it grew to for a while. */
  readonly heapCommittedBytes: number;
  /** Memory V8 accounts for outside its heap: Buffers' and ArrayBuffers' backing stores. */
  readonly externalBytes: number;
  /** Heap trims the gateway has run (GATEWAY_HEAP_TRIM_MIB), and for how long they paused it in all; 0 from a gateway without them. */
  readonly heapTrims: number;
  readonly heapTrimPauseSeconds: number;
}

interface Percentiles {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}

export interface StreamsReport {
  readonly streams: number;
  readonly channels: number;
  readonly openSeconds: number;
  readonly heldSeconds: number;
  /** Streams that ended or failed while held; 0 is the expectation. */
  readonly streamsLost: number;
  /**
   * Thousandths of a core the gateway used holding the streams (heartbeats, keepalives), after its
   * heap trim, when measured.
   */
  readonly gatewayIdleMillicores?: number;
  readonly gatewayMemory?: {
    readonly before: GatewayMemory;
    readonly withStreams: GatewayMemory;
    /**
     * (with streams − before) / streams, in bytes, of the RSS beside the young generation; includes
     * the TLS connections' share.
     */
    readonly rssBytesPerStream: number;
    /** Likewise of the heap in use beside the young generation: what the streams keep. */
    readonly heapBytesPerStream: number;
    /**
     * Where the RSS per stream lies: the V8 heap committed beside the young generation (used or
     * kept as headroom), Buffers' backing stores, and the rest of the RSS (native memory: nghttp2,
     * OpenSSL, malloc's free lists, code), each (with streams − before) / streams.
     */
    readonly heapCommittedBytesPerStream: number;
    readonly externalBytesPerStream: number;
    readonly nativeBytesPerStream: number;
    /** The RSS before the streams, with the young generation as large as it grew with them: the process's fixed cost. */
    readonly emptyRssBytes: number;
    /** Heap trims between the two samples (after the streams opened), and their pauses in all. */
    readonly heapTrims: number;
    readonly heapTrimPauseSeconds: number;
  };
  readonly delivery: {
    readonly sample: number;
    readonly delivered: number;
    readonly withinTwoSeconds: number;
    /** From the Send's start to the envelope's arrival on the device's stream. */
    readonly latencyMs: Percentiles;
    /** From the Send's start to its answer (Kafka holds the envelope). */
    readonly sendAnsweredMs: Percentiles;
    /** From the Send's answer to the envelope's arrival: routing and the push, without the Send's queue. */
    readonly answerToArrivalMs: Percentiles;
  };
  readonly machine: { readonly cores: number; readonly loadAverage: number };
}

const CALL_DEADLINE_MS = 60_000;

const delay = (ms: number): Promise<undefined> =>
  new Promise((resolve) => setTimeout(() => resolve(undefined), ms));

/** Runs `work` over `items`, `concurrency` at a time. */
export async function pool<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const item = items[next];
        next += 1;
        await work(item);
      }
    }),
  );
}

/** The gateway's resident memory and heap in use, from the Prometheus text at `metrics`. */
export function parseGatewayMemory(text: string): GatewayMemory {
  const sample = (name: string): number | undefined => {
    const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
    return match?.[1] === undefined ? undefined : Number(match[1]);
  };
  const value = (name: string): number => {
    const found = sample(name);
    if (found === undefined) throw new Error(`${name} is not among the gateway's metrics`);
    return found;
  };
  const newSpace = (name: string): number => {
    const match = new RegExp(`^${name}\\{[^}]*space="new"[^}]*\\} (\\S+)$`, 'm').exec(text);
    if (match?.[1] === undefined) throw new Error(`${name}{space="new"} is not among the gateway's metrics`);
    return Number(match[1]);
  };
  return {
    rssBytes: value('sotto_process_resident_memory_bytes'),
    heapUsedBytes: value('sotto_nodejs_heap_size_used_bytes'),
    youngGenerationBytes: newSpace('sotto_nodejs_heap_space_size_total_bytes'),
    youngGenerationUsedBytes: newSpace('sotto_nodejs_heap_space_size_used_bytes'),
    heapCommittedBytes: value('sotto_nodejs_heap_size_total_bytes'),
    externalBytes: value('sotto_nodejs_external_memory_bytes'),
    heapTrims: sample('sotto_gateway_heap_trim_seconds_count') ?? 0,
    heapTrimPauseSeconds: sample('sotto_gateway_heap_trim_seconds_sum') ?? 0,
  };
}

/** How long a gateway that trims its heap (GATEWAY_HEAP_TRIM_QUIET_MS, 10 s by default) is given to do so. */
const TRIM_WAIT_MS = 30_000;

/**
 * Waits, up to TRIM_WAIT_MS, for the gateway to trim its heap once quiet, reading its trims once a
 * second (a read is work on its event loop). A gateway with trims off, or whose heap did not grow
 * enough, does not: the wait then ends, saying so.
 */
async function trimmedOnceQuiet(metrics: string, say: (line: string) => void): Promise<void> {
  const trims = async (): Promise<number> => (await gatewayMemory(metrics)).heapTrims;
  const start = await trims();
  const deadline = performance.now() + TRIM_WAIT_MS;
  while (performance.now() < deadline) {
    await delay(1000);
    if ((await trims()) > start) {
      say('the gateway trimmed its heap');
      return;
    }
  }
  say(`the gateway did not trim its heap within ${TRIM_WAIT_MS / 1000} s`);
}

async function gatewayMemory(metrics: string): Promise<GatewayMemory> {
  return parseGatewayMemory(await (await fetch(`http://${metrics}/metrics`)).text());
}

/**
 * Memory settles after a burst (buffers freed, the heap collected lazily):
 * the lowest of a few samples a second apart is the figure.
 */
async function settledMemory(metrics: string, samples = 5): Promise<GatewayMemory> {
  // The sample whose memory beside the young generation is lowest.
  const beside = (memory: GatewayMemory): number => memory.rssBytes - memory.youngGenerationBytes;
  let lowest: GatewayMemory | undefined;
  for (let i = 0; i < samples; i++) {
    if (i > 0) await new Promise((resolve) => setTimeout(resolve, 1000));
    const now = await gatewayMemory(metrics);
    if (lowest === undefined || beside(now) < beside(lowest)) lowest = now;
  }
  return lowest as GatewayMemory;
}

export function percentiles(values: readonly number[]): Percentiles {
  const sorted = Float64Array.from(values).sort();
  const at = (p: number): number =>
    Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0);
  return { p50: at(50), p95: at(95), p99: at(99), max: Math.round(sorted[sorted.length - 1] ?? 0) };
}

interface Device {
  readonly accountId: string;
  readonly registrationId: number;
  readonly auth: Metadata;
}

class HeldStream {
  readonly opened: Promise<void>;
  ended = false;
  private arrived?: (atMs: number, guid: string) => void;

  constructor(readonly call: ClientDuplexStream<ConnectRequest, ConnectResponse>) {
    this.opened = new Promise((resolve, reject) => {
      call.on('data', (message: ConnectResponse) => {
        if (message.queueEmpty) resolve();
        if (message.envelope) {
          call.write({ ack: { guids: [message.envelope.guid] } });
          this.arrived?.(performance.now(), message.envelope.guid);
        }
      });
      call.on('error', (error: Error) => {
        this.ended = true;
        reject(error);
      });
      call.on('status', () => (this.ended = true));
    });
    this.opened.catch(() => undefined);
  }

  nextEnvelope(): Promise<{ atMs: number; guid: string }> {
    return new Promise((resolve) => (this.arrived = (atMs, guid) => resolve({ atMs, guid })));
  }
}

async function registerDevices(
  count: number,
  server: string,
  tls: ChannelCredentials,
  say: (line: string) => void,
): Promise<Device[]> {
  const accounts = new AccountServiceClient(server, tls);
  // One set of keys for every account: this measures streams, not key generation.
  const keys = generateDeviceKeys(1);
  const device = publicDeviceKeys(keys);
  const identityKey = Buffer.from(keys.identity.publicKey.serialize());
  const tag = randomBytes(4).toString('hex');
  const devices: Device[] = [];
  const started = performance.now();
  try {
    await pool(
      Array.from({ length: count }, (_, index) => index),
      16,
      async (index) => {
        const registered = await unary(
          accounts.register.bind(accounts),
          { username: `lgs_${tag}_${index}`, identityKey, device },
          { deadlineMs: CALL_DEADLINE_MS },
        );
        devices[index] = {
          accountId: registered.accountId,
          registrationId: keys.registrationId,
          auth: authorizationMetadata(registered),
        };
        if ((index + 1) % 5000 === 0) say(`registered ${index + 1} of ${count}`);
      },
    );
  } finally {
    accounts.close();
  }
  say(`registered ${count} devices in ${Math.round((performance.now() - started) / 1000)} s`);
  return devices;
}

export async function measureStreams(
  options: StreamsOptions,
  target: StreamsTarget,
  say: (line: string) => void,
): Promise<StreamsReport> {
  const tls = gatewayCredentials(target.server, { ca: target.ca });
  const registered = await registerDevices(options.streams + 1, target.server, tls, say);
  const sender = registered.pop() as Device;
  const devices = registered;
  const channelCount = Math.ceil(options.streams / options.streamsPerChannel);
  const channels = Array.from(
    { length: channelCount },
    // A connection of its own for each channel: grpc-js would otherwise share one.
    () => new MessagingServiceClient(target.server, tls, { 'grpc.use_local_subchannel_pool': 1 }),
  );
  // The sample's Sends go out together: enough connections that none waits for a free HTTP/2 stream.
  const senderChannels = Array.from(
    { length: Math.ceil(options.sample / 50) },
    () => new MessagingServiceClient(target.server, tls, { 'grpc.use_local_subchannel_pool': 1 }),
  );
  const streams: HeldStream[] = [];
  try {
    const snapshot = async (): Promise<void> => {
      const dir = process.env['SOTTO_HEAP_SNAPSHOT_DIR'];
      if (target.gatewayPid === undefined || target.heapSnapshots !== true || dir === undefined) return;
      say('the gateway writes a heap snapshot');
      const sizes = (): number =>
        readdirSync(dir).reduce((sum, file) => sum + statSync(join(dir, file)).size, 0);
      const start = sizes();
      process.kill(target.gatewayPid, 'SIGUSR2');
      // Writing one stops the gateway's event loop; done when the files stop growing.
      let last = start;
      for (;;) {
        await new Promise((resolve) => setTimeout(resolve, 2000));
        const now = sizes();
        if (now > start && now === last) break;
        last = now;
      }
      say('heap snapshot written');
    };
    // Registering grew the gateway's heap with garbage; a gateway that trims gives it back once quiet.
    if (target.gatewayMetrics !== undefined) await trimmedOnceQuiet(target.gatewayMetrics, say);
    const before =
      target.gatewayMetrics === undefined ? undefined : await settledMemory(target.gatewayMetrics);
    await snapshot();
    say(`opening ${options.streams} Connect streams on ${channelCount} connections`);
    const openStarted = performance.now();
    await pool(
      devices.map((device, index) => ({ device, index })),
      64,
      async ({ device, index }) => {
        const channel = channels[index % channelCount];
        const stream = new HeldStream(channel.connect(device.auth));
        streams[index] = stream;
        await stream.opened;
        if ((index + 1) % 5000 === 0) say(`${index + 1} streams open`);
      },
    );
    const openSeconds = (performance.now() - openStarted) / 1000;
    say(
      `${options.streams} streams open in ${Math.round(openSeconds)} s; holding them ${options.holdSeconds} s`,
    );
    const gateway: Record<string, number> =
      target.gatewayPid === undefined ? {} : { gateway: target.gatewayPid };
    // Opening them grew it too: its trim is a one-off, not the cost of holding streams.
    if (target.gatewayMetrics !== undefined) await trimmedOnceQuiet(target.gatewayMetrics, say);
    const cpuBefore = cpuSeconds(gateway)['gateway'];
    const heldStarted = performance.now();
    await new Promise((resolve) => setTimeout(resolve, options.holdSeconds * 1000));
    const cpuAfter = cpuSeconds(gateway)['gateway'];
    const gatewayIdleMillicores =
      cpuBefore === undefined || cpuAfter === undefined
        ? undefined
        : Math.round(((cpuAfter - cpuBefore) * 1e6) / (performance.now() - heldStarted));
    const withStreams =
      target.gatewayMetrics === undefined ? undefined : await settledMemory(target.gatewayMetrics);
    const heldSeconds = (performance.now() - heldStarted) / 1000;
    await snapshot();

    // One envelope each to --sample devices picked at random, every Send started together.
    const chosen = new Set<number>();
    while (chosen.size < Math.min(options.sample, devices.length)) chosen.add(randomInt(devices.length));
    say(`sending one envelope each to ${chosen.size} of them at random`);
    const latencies: number[] = [];
    const answered: number[] = [];
    const afterAnswer: number[] = [];
    const sendTo = async (channel: MessagingServiceClient, device: Device): Promise<string | undefined> => {
      const answer = await unary(channel.send.bind(channel), opaqueSendRequest(device, randomBytes(200)), {
        metadata: sender.auth,
        deadlineMs: CALL_DEADLINE_MS,
      });
      return answer.guids[0];
    };
    // One envelope first, on its own, so that the sample does not pay for the path's first use.
    const first = streams[0].nextEnvelope();
    await sendTo(senderChannels[0], devices[0]);
    // Not forever: a gateway paused long enough (writing a heap snapshot) may have lost the device's presence.
    if ((await Promise.race([first, delay(30_000)])) === undefined) {
      say('the first envelope did not arrive within 30 s; sending the sample anyway');
    }
    await Promise.all(
      [...chosen].map(async (index, position) => {
        const senderChannel = senderChannels[position % senderChannels.length];
        const device = devices[index];
        const stream = streams[index];
        const arrival = stream.nextEnvelope();
        const sentAt = performance.now();
        const guid = await sendTo(senderChannel, device);
        const answeredAt = performance.now();
        answered.push(answeredAt - sentAt);
        const arrived = await Promise.race([arrival, delay(30_000)]);
        if (arrived !== undefined && arrived.guid === guid) {
          latencies.push(arrived.atMs - sentAt);
          afterAnswer.push(Math.max(0, arrived.atMs - answeredAt));
        }
      }),
    );
    const memoryPerStream = (of: (memory: GatewayMemory) => number): number =>
      before === undefined || withStreams === undefined
        ? 0
        : Math.round((of(withStreams) - of(before)) / options.streams);
    return {
      streams: options.streams,
      channels: channelCount,
      openSeconds: Math.round(openSeconds),
      heldSeconds: Math.round(heldSeconds),
      streamsLost: streams.filter((stream) => stream.ended).length,
      ...(gatewayIdleMillicores === undefined ? {} : { gatewayIdleMillicores }),
      ...(before !== undefined && withStreams !== undefined
        ? {
            gatewayMemory: {
              before,
              withStreams,
              rssBytesPerStream: memoryPerStream((memory) => memory.rssBytes - memory.youngGenerationBytes),
              heapBytesPerStream: memoryPerStream(
                (memory) => memory.heapUsedBytes - memory.youngGenerationUsedBytes,
              ),
              heapCommittedBytesPerStream: memoryPerStream(
                (memory) => memory.heapCommittedBytes - memory.youngGenerationBytes,
              ),
              externalBytesPerStream: memoryPerStream((memory) => memory.externalBytes),
              nativeBytesPerStream: memoryPerStream(
                (memory) => memory.rssBytes - memory.heapCommittedBytes - memory.externalBytes,
              ),
              emptyRssBytes:
                before.rssBytes -
                before.youngGenerationBytes +
                Math.max(before.youngGenerationBytes, withStreams.youngGenerationBytes),
              heapTrims: withStreams.heapTrims - before.heapTrims,
              heapTrimPauseSeconds: Number(
                (withStreams.heapTrimPauseSeconds - before.heapTrimPauseSeconds).toFixed(3),
              ),
            },
          }
        : {}),
      delivery: {
        sample: chosen.size,
        delivered: latencies.length,
        withinTwoSeconds: latencies.filter((ms) => ms <= 2000).length,
        latencyMs: percentiles(latencies),
        sendAnsweredMs: percentiles(answered),
        answerToArrivalMs: percentiles(afterAnswer),
      },
      machine: { cores: availableParallelism(), loadAverage: Number((loadavg()[0] ?? 0).toFixed(2)) },
    };
  } finally {
    for (const stream of streams) stream.call.cancel();
    for (const channel of channels) channel.close();
    for (const channel of senderChannels) channel.close();
  }
}
