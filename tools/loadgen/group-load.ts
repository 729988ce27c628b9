/**
 * The wire load generator's group mode: what a group message costs the
 * server, against sending the same copies one-to-one.
 *
 * --group N members register (each account with an unidentified-access key),
 * open their Connect streams and acknowledge whatever they are delivered.
 * --senders of them send group messages, each one SendMultiRecipient upload
 * to the other N−1 members, built with real libsignal (a session with every
 * member, a sender key, the message encrypted once and sealed once for all)
 * and authorised by the XOR of the recipients' access keys, with no sender
 * credentials. So that client crypto does not limit what is measured of the
 * server, every upload of the run is built before the load starts (--messages
 * of them, each a message of its own: a 1,000-member one takes a fifth of a
 * second to seal); the measurement ends early when they run out.
 *
 * After an idle spell and a warm-up it measures, for --duration seconds:
 * uploads accepted and copies delivered a second, upload→copy latency, the
 * CPU of each process per delivered copy; then it waits for every copy and
 * counts lost and duplicated ones (see GroupLedger). Then the same members
 * send as many copies one-to-one, sealed (as --send sealed does), with as many
 * copies in flight, and the two are set side by side.
 */
import { randomBytes } from 'node:crypto';
import { availableParallelism, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { gatewayCredentials, opaqueSendRequest, unary } from '@sotto/client-sdk';
import { cpuSeconds, jvmCompilerSeconds } from './cpu';
import { GroupMember, GroupSender } from './group-crypto';
import { GroupLedger, type GroupDeliveryCounts } from './group-ledger';
import { DeliveryLedger, envelopeContent, SEQUENCE_BYTES, type DeliveryCounts } from './wire-ledger';
import {
  codeName,
  openConnectStreams,
  percentiles,
  registerDevices,
  round,
  sendSealed,
  setAccessKeys,
  type Device,
  type Percentiles,
  type WireTarget,
} from './wire-load';

export interface GroupOptions {
  /** Members of the group, the senders among them; each message goes to the other members−1. */
  readonly members: number;
  /** Members that send; unset: 4, or every member of a smaller group. */
  readonly senders?: number;
  /** Uploads outstanding at a time, over all senders. */
  readonly inFlight: number;
  readonly durationSeconds: number;
  /** Bytes of each group message's plaintext (its number first, then random bytes). */
  readonly size: number;
  /** Uploads built before the load; unset: enough for 30,000 copies (at least 4 × in flight). */
  readonly messages?: number;
  /** Seconds of idle and of warm-up load before each measurement; unset: a fifth of the duration, at most 5. */
  readonly warmupSeconds?: number;
  /** Each delivered copy decrypted by its recipient and its plaintext checked (client crypto: for small runs). */
  readonly verify?: boolean;
}

/** CPU of each process per delivered copy, in µs, with the servers' sum and everything's. */
export type CpuPerCopy = Record<string, number>;

export interface OneToOneReport extends DeliveryCounts {
  readonly send: 'sealed';
  readonly inFlight: number;
  readonly envelopeBytes: number;
  readonly measuredSeconds: number;
  readonly measuredCopies: number;
  readonly copiesPerSecond: number;
  readonly latencyMs: Percentiles;
  readonly cpuMicrosPerCopy: CpuPerCopy;
  readonly serverCpuMicrosPerCopyNet: number;
}

export interface GroupReport extends GroupDeliveryCounts {
  readonly members: number;
  readonly senders: number;
  /** Copies one upload stands for: a device of every member but the sender. */
  readonly copiesPerMessage: number;
  readonly inFlight: number;
  readonly plaintextBytes: number;
  /** Bytes of one upload, and of the copy each recipient is delivered. */
  readonly uploadBytes: number;
  readonly copyBytes: number;
  /** The uploads built before the load, and the client time that took (not part of any figure below). */
  readonly pool: {
    readonly messages: number;
    readonly buildSeconds: number;
    readonly clientMsPerMessage: number;
    /** The measurement ended when they ran out, before --duration. */
    readonly exhausted: boolean;
  };
  readonly warmupSeconds: number;
  readonly measuredSeconds: number;
  readonly measuredUploads: number;
  readonly measuredCopies: number;
  readonly uploadsPerSecond: number;
  readonly copiesPerSecond: number;
  /** Upload→copy delivered, of the copies delivered in the measured seconds. */
  readonly latencyMs: Percentiles;
  /** Upload→accepted (Kafka holds it), of uploads answered in the measured seconds. */
  readonly uploadAnsweredMs: Percentiles;
  readonly machine: { readonly cores: number; readonly loadAverage: number };
  readonly cpuMicrosPerCopy: CpuPerCopy;
  /** The servers' CPU per group message: per copy × copies per message. */
  readonly serverCpuMicrosPerMessage: number;
  /** The servers' CPU per copy above idle and without Kafka's JIT compiler threads (see CopyCost). */
  readonly serverCpuMicrosPerCopyNet: number;
  readonly idleCpuMillicores: Record<string, number>;
  /** Copies decrypted by their recipient, and those whose plaintext was not the message sent. */
  readonly verified?: { readonly copies: number; readonly wrong: number };
  /** The same number of copies, each sent one-to-one, sealed. */
  readonly oneToOne: OneToOneReport;
  /** The servers' whole CPU in each phase, per copy and per message. */
  readonly comparison: CostComparison & {
    /** The same from the servers' CPU above idle and without Kafka's JIT compiler threads (see CopyCost). */
    readonly net: CostComparison;
  };
}

export interface CostComparison {
  readonly serverCpuMicrosPerCopy: { readonly group: number; readonly oneToOne: number };
  readonly serverCpuMicrosPerMessage: { readonly group: number; readonly oneToOne: number };
  /** What one group message costs the servers, in one-to-one sends; null when no server is measured. */
  readonly messageCostInOneToOneSends: number | null;
  /** A copy of a group message against a one-to-one send (below 1: cheaper); null when no server is measured. */
  readonly copyCostRatio: number | null;
}

/** Longest wait, after sending stops, for a further copy to arrive before the rest count as lost. */
const DRAIN_QUIET_MS = 15_000;
const CALL_DEADLINE_MS = 60_000;
const FAILED_SEND_PAUSE_MS = 100;
/** Copies the default pool of uploads stands for. */
const DEFAULT_POOL_COPIES = 30_000;
/** Most copies one-to-one sends keep in flight. */
const MAX_ONE_TO_ONE_IN_FLIGHT = 1000;

function xor(keys: readonly Uint8Array[]): Buffer {
  const combined = Buffer.alloc(16);
  for (const key of keys) for (let i = 0; i < 16; i++) combined[i] ^= key[i] ?? 0;
  return combined;
}

const deviceName = (device: Device): string => `${device.accountId}.1`;

/** CPU seconds so far of each process, and of the JVMs' JIT compiler threads. */
interface CpuReading {
  readonly at: number;
  readonly used: Record<string, number>;
  readonly jit: Record<string, number>;
}

function readCpu(pids: Readonly<Record<string, number>>): CpuReading {
  return { at: performance.now(), used: cpuSeconds(pids), jit: jvmCompilerSeconds(pids) };
}

const difference = (before: Record<string, number>, after: Record<string, number>): Record<string, number> =>
  Object.fromEntries(Object.keys(after).map((name) => [name, (after[name] ?? 0) - (before[name] ?? 0)]));

/** Every process's but this one's. */
const serversOf = (seconds: Record<string, number>): number =>
  Object.entries(seconds)
    .filter(([name]) => name !== 'loadgen')
    .reduce((sum, [, value]) => sum + value, 0);

interface CopyCost {
  readonly perProcess: CpuPerCopy;
  /** The servers' µs per copy. */
  readonly servers: number;
  /**
   * The same less what the servers use idle over as long (`idleServers`, CPU seconds a second)
   * and less Kafka's JIT compiler threads: a broker compiles for minutes after it starts, and on a
   * busy machine the idle share is large at low rates; both would be charged to whichever phase
   * ran first.
   */
  readonly net: number;
}

/** CPU each process spent between two readings, per copy delivered between them. */
function perCopy(before: CpuReading, after: CpuReading, copies: number, idleServers: number): CopyCost {
  const used = difference(before.used, after.used);
  const micros = (seconds: number): number => (copies === 0 ? 0 : round((seconds * 1e6) / copies));
  const servers = serversOf(used);
  const seconds = (after.at - before.at) / 1000;
  const net = servers - idleServers * seconds - serversOf(difference(before.jit, after.jit));
  return {
    perProcess: {
      ...Object.fromEntries(Object.entries(used).map(([name, value]) => [name, micros(value)])),
      ...(Object.keys(used).length > 1 ? { servers: micros(servers) } : {}),
      total: micros(serversOf(used) + (used['loadgen'] ?? 0)),
    },
    servers: micros(servers),
    net: micros(Math.max(0, net)),
  };
}

/** The comparison of two costs per copy, for messages of `copiesPerMessage` copies. */
function compare(group: number, oneToOne: number, copiesPerMessage: number): CostComparison {
  return {
    serverCpuMicrosPerCopy: { group, oneToOne },
    serverCpuMicrosPerMessage: {
      group: round(group * copiesPerMessage),
      oneToOne: round(oneToOne * copiesPerMessage),
    },
    messageCostInOneToOneSends: oneToOne === 0 ? null : round((group * copiesPerMessage) / oneToOne, 2),
    copyCostRatio: oneToOne === 0 ? null : round(group / oneToOne, 3),
  };
}

export async function measureGroup(
  options: GroupOptions,
  target: WireTarget,
  say: (line: string) => void,
): Promise<GroupReport> {
  const { members: memberCount, inFlight } = options;
  if (memberCount < 2) throw new Error('--group: at least 2 members');
  if (options.size < SEQUENCE_BYTES) throw new Error(`--size: at least ${SEQUENCE_BYTES} bytes`);
  const senderCount = Math.min(options.senders ?? 4, memberCount);
  const copiesPerMessage = memberCount - 1;
  const poolSize =
    options.messages ?? Math.max(4 * inFlight, Math.ceil(DEFAULT_POOL_COPIES / copiesPerMessage));
  const warmupSeconds = options.warmupSeconds ?? Math.min(5, options.durationSeconds / 5);
  const tls = gatewayCredentials(target.server, { ca: target.ca });

  say(`registering ${memberCount} member devices, each account with an unidentified-access key`);
  const devices = await registerDevices(memberCount, target.server, tls);
  try {
    await setAccessKeys(devices, target.server, tls);
    const members = devices.map((device) => new GroupMember(device));
    say(`${senderCount} senders: a session with each of the other ${copiesPerMessage} members, a sender key`);
    const senders: GroupSender[] = [];
    for (const member of members.slice(0, senderCount)) {
      const others = members.filter((other) => other !== member);
      senders.push(
        await GroupSender.start(member, others, options.verify === true ? others : [], target.server, tls),
      );
    }
    // Each sender's recipients, and their access keys combined: what authorises its uploads.
    const groupSenders = senders.map((sender) => {
      const recipients = devices.filter((device) => device !== sender.member.device);
      return {
        device: sender.member.device,
        crypto: sender,
        recipients: new Set(recipients.map(deviceName)),
        combinedAccessKey: xor(recipients.map((device) => device.accessKey ?? Buffer.alloc(16))),
      };
    });

    say(
      `building ${poolSize} group messages of ${options.size} bytes, each sealed once for ${copiesPerMessage} recipients`,
    );
    const filler = randomBytes(options.size);
    const ledger = new GroupLedger();
    const pool: { sender: (typeof groupSenders)[number]; upload: Buffer }[] = [];
    const buildStarted = performance.now();
    for (let message = 0; message < poolSize; message++) {
      const sender = groupSenders[message % senderCount];
      if (sender === undefined) throw new Error('no sender');
      const upload = Buffer.from(await sender.crypto.upload(envelopeContent(message, filler)));
      ledger.register(message, upload, sender.recipients);
      pool.push({ sender, upload });
    }
    const buildSeconds = (performance.now() - buildStarted) / 1000;
    say(`built in ${round(buildSeconds)} s (${round((buildSeconds * 1000) / poolSize, 2)} ms a message)`);

    // Copies of group messages go to the group's ledger; once the one-to-one sends have begun, everything else to theirs.
    const oneToOne: { book?: DeliveryLedger } = {};
    let measuring = false;
    let lastDelivery = performance.now();
    let copyBytes = 0;
    const groupLatencies: number[] = [];
    let measuredCopies = 0;
    const oneToOneLatencies: number[] = [];
    let oneToOneMeasured = 0;
    let oneToOneTarget = Infinity;
    let oneToOneReached: () => void = () => undefined;
    const verified = { copies: 0, wrong: 0 };
    const memberOf = new Map(members.map((member) => [member.device, member]));
    const checks: Promise<void>[] = [];

    say(`opening ${memberCount} Connect streams`);
    const streams = openConnectStreams(devices, (device, envelope) => {
      const now = performance.now();
      lastDelivery = now;
      const message = ledger.uploadOf(envelope.content);
      if (message !== undefined || oneToOne.book === undefined) {
        if (message !== undefined) copyBytes ||= envelope.content.length;
        const latency = ledger.delivered(message, deviceName(device), now);
        if (measuring && latency !== undefined) {
          groupLatencies.push(latency);
          measuredCopies++;
        }
        const member = memberOf.get(device);
        if (options.verify === true && message !== undefined && member !== undefined) {
          checks.push(
            member.open(envelope.content).then(
              (plain) => {
                verified.copies++;
                if (!Buffer.from(plain).equals(envelopeContent(message, filler))) verified.wrong++;
              },
              () => {
                verified.wrong++;
              },
            ),
          );
        }
        return;
      }
      const latency = oneToOne.book.delivered(envelope.guid, envelope.content, now);
      if (measuring && latency !== undefined) {
        oneToOneLatencies.push(latency);
        if (++oneToOneMeasured >= oneToOneTarget) oneToOneReached();
      }
    });
    await streams.ready;
    const failed = streams.failed;
    const wait = (seconds: number): Promise<void> =>
      Promise.race([new Promise<void>((resolve) => setTimeout(resolve, seconds * 1000)), failed]);
    const drained = (complete: () => boolean, whenComplete: Promise<void>): Promise<void> =>
      Promise.race([
        whenComplete,
        failed,
        new Promise<void>((resolve) => {
          const quiet = setInterval(() => {
            if (complete() || performance.now() - lastDelivery > DRAIN_QUIET_MS) {
              clearInterval(quiet);
              resolve();
            }
          }, 250);
        }),
      ]);

    say(`${round(warmupSeconds)} s idle, every stream open`);
    const idleBefore = readCpu(target.pids);
    await wait(warmupSeconds);
    const idleAfter = readCpu(target.pids);
    const idleSeconds = (idleAfter.at - idleBefore.at) / 1000;
    const idleUsed = difference(idleBefore.used, idleAfter.used);
    const idleServers = serversOf(idleUsed) / idleSeconds;

    // The group messages: --in-flight loops, each taking the next upload of the pool.
    let sending = true;
    let next = 0;
    let exhausted = false;
    let poolRanOut!: () => void;
    const ranOut = new Promise<void>((resolve) => (poolRanOut = resolve));
    let measuredUploads = 0;
    const answerTimes: number[] = [];
    const uploaders = Array.from({ length: inFlight }, async () => {
      while (sending) {
        const message = next++;
        const entry = pool[message];
        if (entry === undefined) {
          exhausted = true;
          poolRanOut();
          return;
        }
        const sender = entry.sender.device;
        if (sender.sealed === undefined)
          throw new Error(`device ${sender.index} has no connection to send sealed on`);
        const startedAt = performance.now();
        ledger.uploading(message, startedAt);
        try {
          await unary(
            sender.sealed.sendMultiRecipient.bind(sender.sealed),
            {
              message: entry.upload,
              clientTimestampMs: String(Date.now()),
              ephemeral: false,
              combinedAccessKey: entry.sender.combinedAccessKey,
            },
            { deadlineMs: CALL_DEADLINE_MS },
          );
          if (measuring) {
            answerTimes.push(performance.now() - startedAt);
            measuredUploads++;
          }
          ledger.confirmed(message);
        } catch (error) {
          ledger.failed(codeName(error));
          await new Promise((resolve) => setTimeout(resolve, FAILED_SEND_PAUSE_MS));
        }
      }
    });
    say(
      `sending group messages of ${memberCount} members, ${inFlight} uploads in flight: ` +
        `${round(warmupSeconds)} s warm-up, then ${options.durationSeconds} s measured`,
    );
    await Promise.race([wait(warmupSeconds), ranOut]);
    if (exhausted)
      throw new Error(`--messages: the ${poolSize} built ran out during the warm-up; build more`);
    const loadAverage = loadavg()[0] ?? 0;
    const groupCpuBefore = readCpu(target.pids);
    measuring = true;
    await Promise.race([wait(options.durationSeconds), ranOut]);
    measuring = false;
    const groupCpuAfter = readCpu(target.pids);
    const measuredSeconds = (groupCpuAfter.at - groupCpuBefore.at) / 1000;
    const groupCpu = perCopy(groupCpuBefore, groupCpuAfter, measuredCopies, idleServers);
    sending = false;
    if (exhausted) say(`the ${poolSize} messages built ran out after ${round(measuredSeconds)} s measured`);
    say('group messages stopped; waiting for every copy to be delivered');
    await Promise.race([Promise.all(uploaders), failed]);
    await drained(() => ledger.complete, ledger.whenComplete());
    await Promise.all(checks);
    const groupCounts = ledger.counts();
    if (copyBytes === 0) throw new Error('no copy of a group message was delivered');

    // The same copies one-to-one: sealed sends of as many bytes from the same senders to the other members.
    const oneToOneInFlight = Math.min(MAX_ONE_TO_ONE_IN_FLIGHT, inFlight * copiesPerMessage);
    const oneToOneFiller = randomBytes(copyBytes);
    const book = new DeliveryLedger(oneToOneFiller);
    oneToOne.book = book;
    oneToOneTarget = Math.max(1, measuredCopies);
    const reached = new Promise<void>((resolve) => (oneToOneReached = resolve));
    let oneToOneSending = true;
    const oneToOneSenders = Array.from({ length: oneToOneInFlight }, async (_, slot) => {
      const sender = groupSenders[slot % senderCount]?.device;
      if (sender === undefined) return;
      for (let turn = Math.floor(slot / senderCount); oneToOneSending; turn++) {
        const destination = devices[(sender.index + 1 + (turn % copiesPerMessage)) % memberCount];
        if (destination === undefined) throw new Error('no destination device');
        const sequence = book.sending(performance.now());
        try {
          const answer = await sendSealed(
            sender,
            destination,
            opaqueSendRequest(destination, envelopeContent(sequence, oneToOneFiller)),
          );
          const guid = answer.guids[0];
          if (guid === undefined) book.failed('NO_GUID');
          else book.confirmed(sequence, guid);
        } catch (error) {
          book.failed(codeName(error));
          await new Promise((resolve) => setTimeout(resolve, FAILED_SEND_PAUSE_MS));
        }
      }
    });
    say(
      `the same ${oneToOneTarget} copies one-to-one (SendSealed, ${copyBytes} bytes each), ${oneToOneInFlight} in flight: ` +
        `${round(warmupSeconds)} s warm-up, then until ${oneToOneTarget} are delivered`,
    );
    await wait(warmupSeconds);
    const oneCpuBefore = readCpu(target.pids);
    measuring = true;
    // As long as the group messages took, ten times over, at the most: a slower platform is reported, not waited for.
    await Promise.race([reached, wait(Math.max(10, 10 * measuredSeconds))]);
    measuring = false;
    const oneCpuAfter = readCpu(target.pids);
    const oneSeconds = (oneCpuAfter.at - oneCpuBefore.at) / 1000;
    const oneCpu = perCopy(oneCpuBefore, oneCpuAfter, oneToOneMeasured, idleServers);
    oneToOneSending = false;
    say('one-to-one sends stopped; waiting for everything sent to be delivered');
    await Promise.race([Promise.all(oneToOneSenders), failed]);
    await drained(() => book.complete, book.whenComplete());

    const millicores = (seconds: number): number => Math.round((seconds * 1000) / idleSeconds);
    // The rates from the seconds as reported, so that the report's own figures agree.
    const reportedSeconds = round(measuredSeconds, 3);
    return {
      members: memberCount,
      senders: senderCount,
      copiesPerMessage,
      inFlight,
      plaintextBytes: options.size,
      uploadBytes: pool[0]?.upload.length ?? 0,
      copyBytes,
      pool: {
        messages: poolSize,
        buildSeconds: round(buildSeconds),
        clientMsPerMessage: round((buildSeconds * 1000) / poolSize, 2),
        exhausted,
      },
      warmupSeconds: round(warmupSeconds),
      measuredSeconds: reportedSeconds,
      measuredUploads,
      measuredCopies,
      uploadsPerSecond: round(measuredUploads / reportedSeconds),
      copiesPerSecond: Math.round(measuredCopies / reportedSeconds),
      latencyMs: percentiles(groupLatencies),
      uploadAnsweredMs: percentiles(answerTimes),
      machine: { cores: availableParallelism(), loadAverage: round(loadAverage, 2) },
      ...groupCounts,
      cpuMicrosPerCopy: groupCpu.perProcess,
      serverCpuMicrosPerMessage: round(groupCpu.servers * copiesPerMessage),
      serverCpuMicrosPerCopyNet: groupCpu.net,
      idleCpuMillicores: {
        ...Object.fromEntries(Object.entries(idleUsed).map(([name, seconds]) => [name, millicores(seconds)])),
        ...(Object.keys(idleUsed).length > 1 ? { servers: millicores(serversOf(idleUsed)) } : {}),
      },
      ...(options.verify === true ? { verified } : {}),
      oneToOne: {
        send: 'sealed',
        inFlight: oneToOneInFlight,
        envelopeBytes: copyBytes,
        measuredSeconds: round(oneSeconds, 3),
        measuredCopies: oneToOneMeasured,
        copiesPerSecond: Math.round(oneToOneMeasured / oneSeconds),
        latencyMs: percentiles(oneToOneLatencies),
        ...book.counts(),
        cpuMicrosPerCopy: oneCpu.perProcess,
        serverCpuMicrosPerCopyNet: oneCpu.net,
      },
      comparison: {
        ...compare(groupCpu.servers, oneCpu.servers, copiesPerMessage),
        net: compare(groupCpu.net, oneCpu.net, copiesPerMessage),
      },
    };
  } finally {
    for (const device of devices) {
      device.stream?.cancel();
      device.messaging.close();
      device.sealed?.close();
    }
  }
}
