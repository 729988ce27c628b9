import { Injectable } from '@nestjs/common';
import { Counter, Gauge, Registry } from 'prom-client';

/** The delivery streams of this gateway as they stand, counted when Prometheus scrapes. */
export interface DeliverySnapshot {
  readonly streams: number;
  readonly inFlightEnvelopes: number;
  readonly inFlightBytes: number;
  readonly waitingForAcknowledgements: number;
  readonly waitingForClient: number;
  readonly awaitingRetry: number;
  /** The most drains in a row that failed for one connected device (0 when every last drain worked). */
  readonly longestFailureStreak: number;
}

const NOTHING: DeliverySnapshot = {
  streams: 0,
  inFlightEnvelopes: 0,
  inFlightBytes: 0,
  waitingForAcknowledgements: 0,
  waitingForClient: 0,
  awaitingRetry: 0,
  longestFailureStreak: 0,
};

/**
 * What SREs watch on the gateway's delivery streams: how many, what they
 * hold, what they wait for, and drains that fail. No series names an account
 * or a device.
 */
@Injectable()
export class DeliveryMetrics {
  private readonly drainFailures: Counter;
  private readonly envelopesRead: Counter;
  private readonly envelopesPushed: Counter;
  private readonly ephemeralDropped: Counter;
  private readonly heartbeatRounds: Counter;
  private readonly heartbeatCalls: Counter<'outcome'>;
  private snapshot: () => DeliverySnapshot = () => NOTHING;

  /** The service's registry, which runService serves on /metrics. */
  constructor(registry: Registry) {
    const registers = [registry];
    const current = (): DeliverySnapshot => this.snapshot();
    this.drainFailures = new Counter({
      name: 'sotto_gateway_drain_failures_total',
      help: 'Mailbox drains of a connected device that failed (the relay or the directory unreachable); each is retried with backoff.',
      registers,
    });
    this.envelopesRead = new Counter({
      name: 'sotto_gateway_mailbox_envelopes_read_total',
      help: 'Envelopes this gateway read from mailboxes to write on delivery streams.',
      registers,
    });
    this.envelopesPushed = new Counter({
      name: 'sotto_gateway_envelopes_pushed_total',
      help: 'Envelopes written on delivery streams as the relay pushed them, with no read of the mailbox (the rest are in sotto_gateway_mailbox_envelopes_read_total).',
      registers,
    });
    this.ephemeralDropped = new Counter({
      name: 'sotto_gateway_ephemeral_dropped_total',
      help: 'Ephemeral envelopes (typing indicators) dropped because their device was not reading its stream.',
      registers,
    });
    this.heartbeatRounds = new Counter({
      name: 'sotto_gateway_presence_heartbeat_rounds_total',
      help: 'Heartbeats of this gateway: each renews the presence claims of all its streams, in calls of at most 1000 devices.',
      registers,
    });
    this.heartbeatCalls = new Counter({
      name: 'sotto_gateway_presence_heartbeat_calls_total',
      help: 'Presence Heartbeat calls by outcome; the devices of a failed call lose their claim unless the next round renews it within PRESENCE_TTL_MS.',
      labelNames: ['outcome'],
      registers,
    });
    this.heartbeatCalls.inc({ outcome: 'ok' }, 0);
    this.heartbeatCalls.inc({ outcome: 'failed' }, 0);
    new Gauge({
      name: 'sotto_gateway_delivery_streams',
      help: 'Open Connect streams on this gateway.',
      registers,
      collect() {
        this.set(current().streams);
      },
    });
    new Gauge({
      name: 'sotto_gateway_delivery_in_flight_envelopes',
      help: 'Envelopes read from mailboxes and not yet acknowledged by their device, over all streams (at most DELIVERY_MAX_IN_FLIGHT each).',
      registers,
      collect() {
        this.set(current().inFlightEnvelopes);
      },
    });
    new Gauge({
      name: 'sotto_gateway_delivery_in_flight_bytes',
      help: 'Content bytes of the envelopes in sotto_gateway_delivery_in_flight_envelopes.',
      registers,
      collect() {
        this.set(current().inFlightBytes);
      },
    });
    new Gauge({
      name: 'sotto_gateway_delivery_streams_waiting',
      help: 'Streams whose backlog waits: for acknowledgements (DELIVERY_MAX_IN_FLIGHT reached), or for the device to read (HTTP/2 flow control).',
      labelNames: ['reason'],
      registers,
      collect() {
        const now = current();
        this.set({ reason: 'acknowledgements' }, now.waitingForAcknowledgements);
        this.set({ reason: 'client_reading' }, now.waitingForClient);
      },
    });
    new Gauge({
      name: 'sotto_gateway_drains_awaiting_retry',
      help: 'Connected devices whose last drain failed, waiting for the retry; above 0 for long, drains keep failing.',
      registers,
      collect() {
        this.set(current().awaitingRetry);
      },
    });
    new Gauge({
      name: 'sotto_gateway_drain_failure_streak_max',
      help: 'The most drains in a row that failed for one connected device; a value that keeps rising means drains keep failing (alert on it).',
      registers,
      collect() {
        this.set(current().longestFailureStreak);
      },
    });
  }

  /** Where the gauges read the streams' state from when scraped. */
  observe(snapshot: () => DeliverySnapshot): void {
    this.snapshot = snapshot;
  }

  drainFailed(): void {
    this.drainFailures.inc();
  }

  read(envelopes: number): void {
    if (envelopes > 0) this.envelopesRead.inc(envelopes);
  }

  pushed(envelopes: number): void {
    if (envelopes > 0) this.envelopesPushed.inc(envelopes);
  }

  heartbeatRound(calls: number, failed: number): void {
    this.heartbeatRounds.inc();
    if (calls > failed) this.heartbeatCalls.inc({ outcome: 'ok' }, calls - failed);
    if (failed > 0) this.heartbeatCalls.inc({ outcome: 'failed' }, failed);
  }

  ephemeralDroppedOne(): void {
    this.ephemeralDropped.inc();
  }
}
