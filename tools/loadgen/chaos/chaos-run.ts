/**
 * A fault run: wire load through the public gateway (the wire load
 * generator's devices and its ledger of sent and received GUIDs) while the
 * faults kill, in turn, what the message path runs on. Each kill waits for
 * its share of the messages; each is followed by the restart and by a
 * message sent after the kill being delivered (its recovery time). Then
 * sending stops, everything is drained, and the ledger says what was lost or
 * shown twice.
 *
 * The devices behave as clients do: a Connect stream that breaks (its
 * gateway killed) is opened again, every envelope received is acknowledged,
 * and a Send that fails is not retried (a retry is a new message to the
 * ledger; what a failed Send had already put in Kafka is still delivered,
 * and counted as unconfirmed).
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { ClientDuplexStream } from '@grpc/grpc-js';
import { gatewayCredentials, opaqueSendRequest, unary } from '@sotto/client-sdk';
import type { ConnectRequest, ConnectResponse } from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { codeName, registerDevices, type Device } from '../wire-load';
import { DeliveryLedger, envelopeContent, SEQUENCE_BYTES, type DeliveryCounts } from '../wire-ledger';
import type { Fault } from './faults';

export interface ChaosOptions {
  /** Sends to have answered before sending stops. */
  readonly messages: number;
  /** How many times each fault kills. */
  readonly killsPerFault: number;
  readonly devices: number;
  readonly inFlight: number;
  readonly size: number;
}

export interface KillRecord {
  readonly kind: string;
  readonly victim: string;
  /** Sends answered when it was killed. */
  readonly atMessage: number;
  /** Kill until the replacement was serving (a broker: back in every ISR). */
  readonly restartMs: number;
  /** Kill until the first envelope sent after the kill was delivered. */
  readonly recoveryMs: number;
  /** Seconds into the run. */
  readonly atSecond: number;
}

export interface ChaosReport extends DeliveryCounts {
  readonly options: ChaosOptions;
  readonly seconds: number;
  readonly deliveredPerSecond: number;
  readonly kills: readonly KillRecord[];
  /** Per kind of fault: kills, and the slowest and mean recovery. */
  readonly recovery: Record<string, { kills: number; maxMs: number; meanMs: number }>;
  /** Streams opened again after they broke. */
  readonly reconnects: number;
  /**
   * Answered sends that had not arrived when deliveries went quiet and came
   * only once every device opened its stream again: stuck in a mailbox
   * without a nudge (late, not lost, but a user would wait for a reconnect).
   */
  readonly deliveredOnlyAfterReconnect: number;
  /** What was still missing at the end (at most 20): GUID, sequence, seconds into the run it was sent. */
  readonly missing: readonly { guid: string; sequence: number; atSecond: number }[];
  /** Empty when nothing was lost, corrupted or shown twice, and every kill recovered. */
  readonly problems: readonly string[];
}

/** How long after the kill a delivery may take to resume before the run fails. */
const RECOVERY_TIMEOUT_MS = 180_000;
/** After sending stops: how long without a new delivery before what is missing counts as lost. */
const DRAIN_QUIET_MS = 30_000;
const SEND_DEADLINE_MS = 30_000;
const RECONNECT_PAUSE_MS = 250;
const FAILED_SEND_PAUSE_MS = 100;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** When to kill: faults in turn, round after round, spread evenly over the messages. */
export function killSchedule(
  faults: readonly string[],
  killsPerFault: number,
  messages: number,
): { kind: string; atMessage: number }[] {
  const kinds = Array.from({ length: killsPerFault }, () => faults).flat();
  return kinds.map((kind, i) => ({ kind, atMessage: Math.floor(((i + 1) * messages) / (kinds.length + 1)) }));
}

export async function runChaos(
  options: ChaosOptions,
  target: { readonly server: string; readonly ca?: string },
  faults: readonly Fault[],
  say: (line: string) => void,
): Promise<ChaosReport> {
  const tls = gatewayCredentials(target.server, { ca: target.ca });
  say(`registering ${options.devices} devices`);
  const devices = await registerDevices(options.devices, target.server, tls);
  const filler = randomBytes(options.size);
  const book = new DeliveryLedger(filler);
  const started = performance.now();
  let stopped = false;
  let sending = true;
  // Sending goes on until every planned kill is done, even past --messages: Sends may keep being
  // answered while a killed service recovers (the relay takes them before its consumer rejoins).
  let killsDone = false;
  let reconnects = 0;
  let lastDelivery = performance.now();
  /** The lowest sequence delivered since each waiting recovery began: resolves it. */
  const recoveryWaiters: { fromSequence: number; resolve: () => void }[] = [];

  const onEnvelope = (envelope: { guid: string; content: Uint8Array }): void => {
    const now = performance.now();
    lastDelivery = now;
    book.delivered(envelope.guid, envelope.content, now);
    if (envelope.content.length >= SEQUENCE_BYTES) {
      const sequence = Number(Buffer.from(envelope.content).readBigUInt64BE(0));
      for (const waiter of [...recoveryWaiters]) {
        if (sequence >= waiter.fromSequence) {
          recoveryWaiters.splice(recoveryWaiters.indexOf(waiter), 1);
          waiter.resolve();
        }
      }
    }
  };

  /** Keeps one Connect stream open for the device until the run stops; resolves at its first QueueEmpty. */
  const connect = (device: Device): Promise<void> =>
    new Promise((firstDrained) => {
      const open = (): void => {
        if (stopped) return;
        const stream: ClientDuplexStream<ConnectRequest, ConnectResponse> = device.messaging.connect(
          device.auth,
        );
        device.stream = stream;
        let acks: string[] = [];
        const flush = (): void => {
          if (acks.length > 0 && stream.writable) stream.write({ ack: { guids: acks } });
          acks = [];
        };
        let reopened = false;
        const reopen = (): void => {
          if (reopened || stopped) return;
          reopened = true;
          reconnects++;
          setTimeout(open, RECONNECT_PAUSE_MS);
        };
        stream.on('data', (message: ConnectResponse) => {
          if (message.envelope !== undefined) {
            onEnvelope(message.envelope);
            if (acks.length === 0) setImmediate(flush);
            acks.push(message.envelope.guid);
          } else if (message.queueEmpty !== undefined) {
            firstDrained();
          }
        });
        // A broken stream (its gateway killed, or displaced) is opened again, as a client would.
        stream.on('error', reopen);
        stream.on('end', reopen);
      };
      open();
    });

  try {
    say(`opening ${options.devices} Connect streams`);
    await Promise.all(devices.map(connect));

    const sendOne = async (sender: Device, turn: number): Promise<void> => {
      const destination = devices[(sender.index + 1 + (turn % (devices.length - 1))) % devices.length];
      if (destination === undefined) throw new Error('no destination device');
      const sequence = book.sending(performance.now());
      try {
        const answer = await unary(
          sender.messaging.send.bind(sender.messaging),
          opaqueSendRequest(destination, envelopeContent(sequence, filler)),
          { metadata: sender.auth, deadlineMs: SEND_DEADLINE_MS },
        );
        const guid = answer.guids[0];
        if (guid === undefined) book.failed('NO_GUID');
        else book.confirmed(sequence, guid);
      } catch (error) {
        book.failed(codeName(error));
        await sleep(FAILED_SEND_PAUSE_MS);
      }
      if (killsDone && book.counts().confirmed >= options.messages) sending = false;
    };
    say(`sending ${options.messages} envelopes of ${options.size} bytes, ${options.inFlight} in flight`);
    const senders = Array.from({ length: options.inFlight }, async (_, slot) => {
      const sender = devices[slot % devices.length];
      if (sender === undefined) return;
      for (let turn = Math.floor(slot / devices.length); sending; turn++) await sendOne(sender, turn);
    });

    const kills: KillRecord[] = [];
    const byKind = new Map(faults.map((fault) => [fault.kind, fault]));
    for (const planned of killSchedule(
      faults.map((f) => f.kind),
      options.killsPerFault,
      options.messages,
    )) {
      const fault = byKind.get(planned.kind);
      if (fault === undefined) continue;
      while (sending && book.counts().confirmed < planned.atMessage) await sleep(50);
      if (!sending)
        throw new Error(`sending ended before the ${planned.kind} kill at message ${planned.atMessage}`);
      const atMessage = book.counts().confirmed;
      const killedAt = performance.now();
      const victim = await fault.kill();
      // Whatever is sent from now on has to get through the restart.
      const recovered = new Promise<void>((resolve) =>
        recoveryWaiters.push({ fromSequence: book.counts().sent, resolve }),
      );
      say(`killed ${victim} at message ${atMessage}`);
      await fault.recover();
      const restartMs = Math.round(performance.now() - killedAt);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        recovered,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no delivery ${RECOVERY_TIMEOUT_MS / 1000} s after killing ${victim}`)),
            RECOVERY_TIMEOUT_MS,
          );
        }),
      ]).finally(() => clearTimeout(timer));
      const recoveryMs = Math.round(performance.now() - killedAt);
      const atSecond = Number(((killedAt - started) / 1000).toFixed(1));
      kills.push({ kind: planned.kind, victim, atMessage, restartMs, recoveryMs, atSecond });
      say(`${victim}: serving again after ${restartMs} ms, delivering after ${recoveryMs} ms`);
    }
    killsDone = true;
    if (book.counts().confirmed >= options.messages) sending = false;

    await Promise.all(senders);
    const drained = (): Promise<void> =>
      Promise.race([
        book.whenComplete(),
        new Promise<void>((resolve) => {
          const quiet = setInterval(() => {
            if (book.complete || performance.now() - lastDelivery > DRAIN_QUIET_MS) {
              clearInterval(quiet);
              resolve();
            }
          }, 250);
        }),
      ]);
    say('sending stopped; waiting for everything answered to be delivered');
    await drained();
    const seconds = (performance.now() - started) / 1000;
    const missingBeforeReconnect = book.counts().lost;
    if (missingBeforeReconnect > 0) {
      say(
        `${missingBeforeReconnect} missing; every device opens its stream again, draining its mailbox from the start`,
      );
      lastDelivery = performance.now();
      for (const device of devices) device.stream?.cancel();
      await drained();
    }
    const counts = book.counts();
    const recovery: ChaosReport['recovery'] = {};
    for (const kind of new Set(kills.map((kill) => kill.kind))) {
      const times = kills.filter((kill) => kill.kind === kind).map((kill) => kill.recoveryMs);
      recovery[kind] = {
        kills: times.length,
        maxMs: Math.max(...times),
        meanMs: Math.round(times.reduce((sum, ms) => sum + ms, 0) / times.length),
      };
    }
    const problems = [
      ...(counts.lost > 0 ? [`${counts.lost} answered sends never delivered`] : []),
      ...(missingBeforeReconnect > counts.lost
        ? [`${missingBeforeReconnect - counts.lost} answered sends delivered only after a reconnect`]
        : []),
      ...(counts.shownTwice > 0 ? [`${counts.shownTwice} sends delivered again under a new GUID`] : []),
      ...(counts.corrupted > 0 ? [`${counts.corrupted} deliveries with other bytes than sent`] : []),
      ...(counts.confirmed < options.messages ? [`only ${counts.confirmed} sends answered`] : []),
    ];
    return {
      options,
      seconds: Number(seconds.toFixed(1)),
      deliveredPerSecond: Math.round(counts.delivered / seconds),
      ...counts,
      kills,
      recovery,
      reconnects,
      deliveredOnlyAfterReconnect: missingBeforeReconnect - counts.lost,
      missing: book.missing().map(({ guid, sequence, sentAt }) => ({
        guid,
        sequence,
        atSecond: Number(((sentAt - started) / 1000).toFixed(1)),
      })),
      problems,
    };
  } finally {
    stopped = true;
    sending = false;
    for (const device of devices) {
      device.stream?.cancel();
      device.messaging.close();
    }
  }
}
