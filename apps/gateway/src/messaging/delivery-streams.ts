import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { gatewayEvents } from '@sotto/contracts';
import type { VaultAttemptFailed } from '@sotto/contracts/generated/sotto/common/v1/backup';
import type { Envelope } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import type { ConnectResponse } from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import type { QueuedMail } from '@sotto/contracts/generated/sotto/presence/v1/presence';
import { REDIS, subscribe, type Redis, type Subscription } from '@sotto/platform/redis';
import type { AuthenticatedDevice } from '../auth/authenticator';
import { CredentialRevocations, type Revocation } from '../auth/credential-revocations';
import { GATEWAY_ENV, type GatewayEnv } from '../env';
import { RelayCalls } from '../upstream/relay-calls';
import { Upstream } from '../upstream/upstream';
import { Groups } from '../groups';
import { VaultReports } from '../vault/vault-reports';
import { DeliveryMetrics, type DeliverySnapshot } from './delivery-metrics';
import { drainRetryDelayMs, type RetryDelays } from './drain-retry';
import { InFlightWindow, type InFlightLimits } from './in-flight-window';
import { comesAfter, followsDirectly } from './sequences';

const PAGE = 100;
/**
 * The most bytes one page of a drain asks for. Reads of many devices go to
 * the relay in one batch, each counted at what its page could hold, so a
 * smaller page lets more reads share a batch.
 */
const PAGE_BYTES = 256 * 1024;
/** Streams drained side by side when the event subscription comes back: each costs a mailbox read. */
const REDRAIN_CONCURRENCY = 64;
/** After this long a re-drain waiting on a slow device's acknowledgements lets the next stream start. */
const REDRAIN_TURN_MS = 5_000;
/** Below this many one-time keys of either kind, a device is asked to upload more. */
export const PREKEYS_LOW = 10;

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** Where a stream's messages go: the device's Connect call. */
export interface StreamOutlet {
  /** Hands a message to the call, which writes it as HTTP/2 flow control lets it. */
  push(message: ConnectResponse): void;
  /** True while the call holds writes the device has not taken yet: push no envelope until ready(). */
  readonly congested: boolean;
  /** Resolves once the call has written what it held. */
  ready(): Promise<void>;
  /** Ends the call. */
  end(): void;
}

export interface DeliverySettings {
  readonly inFlight: InFlightLimits;
  readonly retry: RetryDelays;
}

/** One device's open Connect stream on this gateway. */
export class DeliveryStream {
  readonly id = randomUUID();
  private lastSequence = '0';
  private draining = false;
  private drainAgain = false;
  private reportedEmpty = false;
  private closed = false;
  /** Settles when the stream closes; made only when a drain waits for the device to read. */
  private ended?: Promise<void>;
  private markEnded?: () => void;
  private readonly window: InFlightWindow;
  /** What the drain waits for, if anything: room in the window, or the device to read. */
  private waitingFor?: 'acknowledgements' | 'client';
  private failedDrains = 0;
  private retry?: NodeJS.Timeout;
  /** Failed tries on the account's vault to tell this device of, asked for while the backlog drains. */
  private vaultReport?: Promise<VaultAttemptFailed | undefined>;

  constructor(
    readonly device: AuthenticatedDevice,
    private readonly upstream: Upstream,
    private readonly relay: RelayCalls,
    private readonly vaultReports: VaultReports,
    private readonly outlet: StreamOutlet,
    private readonly onClose: () => void,
    private readonly settings: DeliverySettings,
    private readonly metrics: DeliveryMetrics,
    private readonly logger: Logger,
  ) {
    this.window = new InFlightWindow(settings.inFlight);
  }

  /**
   * Sends everything queued after what this stream already sent, in order,
   * with at most the window's worth unacknowledged: past it, the rest waits
   * in the mailbox until the device acknowledges. Drains never overlap: a
   * nudge during a drain makes it go round once more. A drain that fails is
   * tried again after a backoff, so a connected device never stalls waiting
   * for the next nudge.
   */
  async drain(): Promise<void> {
    if (this.closed) return;
    if (this.draining) {
      this.drainAgain = true;
      return;
    }
    this.draining = true;
    clearTimeout(this.retry);
    this.retry = undefined;
    this.vaultReport ??= this.vaultReports.pending(this.device.accountId);
    try {
      do {
        do {
          this.drainAgain = false;
          await this.sendQueued();
        } while (this.drainAgain && !this.closed);
        if (!this.reportedEmpty && !this.closed) {
          this.reportedEmpty = true;
          // Before QueueEmpty, so a client that stops listening there still hears of it.
          const report = await this.vaultReport;
          if (report) this.pushVaultReport(report);
          if (this.closed) return;
          this.outlet.push({ queueEmpty: {} });
          await this.checkPreKeys();
        }
        // Mail that arrived while the vault and the prekeys were asked about.
      } while (this.drainAgain && !this.closed);
      this.failedDrains = 0;
    } catch (error) {
      this.retryLater(error);
    } finally {
      this.draining = false;
    }
  }

  /** Reads the mailbox page by page into the window and writes each envelope when the device takes it. */
  private async sendQueued(): Promise<void> {
    for (;;) {
      if (this.window.isFull) {
        this.waitingFor = 'acknowledgements';
        await this.window.whenRoom();
        this.waitingFor = undefined;
      }
      if (this.closed) return;
      const room = this.window.room();
      const page = await this.relay.readMailbox({
        ...this.device,
        afterSequence: this.lastSequence,
        limit: Math.min(PAGE, room.envelopes),
        maxBytes: Math.min(room.bytes, PAGE_BYTES),
      });
      if (this.closed) return;
      this.metrics.read(page.envelopes.length);
      for (const { envelope } of page.envelopes) {
        if (envelope) this.window.add(envelope.guid, envelope.content.length);
      }
      for (const queued of page.envelopes) {
        if (queued.envelope) {
          await this.writable();
          if (this.closed) return;
          this.outlet.push({ envelope: queued.envelope });
        }
        this.lastSequence = queued.sequence;
      }
      if (page.drained || page.envelopes.length === 0) return;
    }
  }

  /**
   * New mail as the relay pushed it. A stream that has written everything up
   * to the first of these, with room for them in its window and a device
   * that is reading, writes them as they are; any other drains the mailbox,
   * which holds them too. Mail this stream already wrote (the relay pushes a
   * batch again when it routes it again) changes nothing.
   */
  offer(mail: readonly QueuedMail[]): void {
    if (this.closed) return;
    const last = mail[mail.length - 1];
    if (last !== undefined && !comesAfter(last.sequence, this.lastSequence)) return;
    if (this.draining || !this.takes(mail)) {
      void this.drain();
      return;
    }
    for (const { sequence, envelope } of mail) {
      if (envelope) {
        this.window.add(envelope.guid, envelope.content.length);
        this.outlet.push({ envelope });
      }
      this.lastSequence = sequence;
    }
    this.metrics.pushed(mail.length);
  }

  /** Whether pushed mail follows on from what this stream wrote, and may all be written now. */
  private takes(mail: readonly QueuedMail[]): boolean {
    if (mail.length === 0 || this.outlet.congested) return false;
    let previous = this.lastSequence;
    let bytes = 0;
    for (const { sequence, envelope } of mail) {
      if (envelope === undefined || !followsDirectly(sequence, previous)) return false;
      previous = sequence;
      bytes += envelope.content.length;
    }
    const room = this.window.room();
    return mail.length <= room.envelopes && bytes <= room.bytes;
  }

  /** Waits while the call holds writes the device has not read: nothing piles up in the gateway. */
  private async writable(): Promise<void> {
    // Again after each 'drain': what the call held may have filled it once more.
    while (this.outlet.congested && !this.closed) {
      this.waitingFor = 'client';
      this.ended ??= new Promise((resolve) => (this.markEnded = resolve));
      await Promise.race([this.outlet.ready(), this.ended]);
      this.waitingFor = undefined;
    }
  }

  private retryLater(error: unknown): void {
    if (this.closed) return;
    this.failedDrains += 1;
    this.metrics.drainFailed();
    const delayMs = drainRetryDelayMs(this.failedDrains, this.settings.retry);
    this.logger.warn(
      `drain of ${this.device.accountId}.${this.device.deviceId} failed (${this.failedDrains} in a row), ` +
        `trying again in ${delayMs} ms: ${messageOf(error)}`,
    );
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.drain();
    }, delayMs);
  }

  /** A failed password try on the account's vault, as presence or the vault itself reported it. */
  pushVaultReport(report: VaultAttemptFailed): void {
    if (!this.closed) this.outlet.push({ vaultAttemptFailed: report });
  }

  /**
   * Ephemeral envelopes are pushed as they come, never queued; acknowledging
   * them is harmless. One that finds the device not reading is dropped, as
   * one that finds it offline is: they are not worth memory.
   */
  pushEphemeral(envelope: Envelope): void {
    if (this.closed) return;
    if (this.outlet.congested) {
      this.metrics.ephemeralDroppedOne();
      return;
    }
    this.outlet.push({ envelope });
  }

  /** The device acknowledged these: they leave the window, and the backlog may come on. */
  acknowledged(guids: readonly string[]): void {
    this.window.release(guids);
  }

  displace(): void {
    if (this.closed) return;
    this.outlet.push({ displaced: {} });
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retry);
    this.retry = undefined;
    this.window.clear();
    this.markEnded?.();
    this.onClose();
    this.outlet.end();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** This stream's share of the gateway's delivery metrics. */
  addTo(snapshot: {
    -readonly [K in keyof DeliverySnapshot]: DeliverySnapshot[K];
  }): void {
    snapshot.streams += 1;
    snapshot.inFlightEnvelopes += this.window.envelopes;
    snapshot.inFlightBytes += this.window.bytes;
    if (this.waitingFor === 'acknowledgements') snapshot.waitingForAcknowledgements += 1;
    if (this.waitingFor === 'client') snapshot.waitingForClient += 1;
    if (this.retry !== undefined) snapshot.awaitingRetry += 1;
    snapshot.longestFailureStreak = Math.max(snapshot.longestFailureStreak, this.failedDrains);
  }

  /** Advisory: a failure here is logged, and costs the device nothing of its mail. */
  private async checkPreKeys(): Promise<void> {
    try {
      const counts = await this.upstream.directory.getPreKeyCount(this.device);
      if (this.closed) return;
      if (counts.ecCount < PREKEYS_LOW || counts.kyberCount < PREKEYS_LOW) {
        this.outlet.push({ preKeysLow: { ecCount: counts.ecCount, kyberCount: counts.kyberCount } });
      }
    } catch (error) {
      this.logger.warn(`prekey count of ${this.device.accountId} unknown: ${messageOf(error)}`);
    }
  }
}

/**
 * The delivery streams this gateway holds. Presence records which gateway
 * holds each device; this gateway listens on its own Redis channel for "new
 * mail" and "displaced" events about its streams (PresenceHeartbeat renews
 * its claims).
 */
@Injectable()
export class DeliveryStreams implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(DeliveryStreams.name);
  private readonly streams = new Map<string, DeliveryStream>();
  // The same streams by device ("<account>.<device>"), for revocations.
  private readonly streamsByDevice = new Groups<string, DeliveryStream>();
  private readonly settings: DeliverySettings;
  private subscription?: Subscription;

  constructor(
    private readonly upstream: Upstream,
    private readonly relay: RelayCalls,
    private readonly vaultReports: VaultReports,
    private readonly metrics: DeliveryMetrics,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(GATEWAY_ENV) private readonly env: GatewayEnv,
    revocations: CredentialRevocations,
  ) {
    this.settings = {
      inFlight: { envelopes: env.DELIVERY_MAX_IN_FLIGHT, bytes: env.DELIVERY_MAX_IN_FLIGHT_BYTES },
      retry: { minMs: env.DELIVERY_DRAIN_RETRY_MIN_MS, maxMs: env.DELIVERY_DRAIN_RETRY_MAX_MS },
    };
    revocations.onRevocation((revocation) => this.endRevoked(revocation));
    metrics.observe(() => this.snapshot());
  }

  async onModuleInit(): Promise<void> {
    this.subscription = await subscribe(this.redis, gatewayEvents.channel(this.env.GATEWAY_ID), {
      name: `sotto-gateway-events-${this.env.GATEWAY_ID}`,
      onMessage: (message) => this.onEvent(message),
      // "New mail" published while the subscription was down never arrives: look in every mailbox.
      onUp: () => void this.drainAll(),
    });
  }

  /** Drains every open stream once, at most REDRAIN_CONCURRENCY at a time. */
  private async drainAll(): Promise<void> {
    const streams = [...this.streams.values()];
    this.logger.log(`event subscription back: draining ${streams.length} open streams for mail it missed`);
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let stream = streams[next++]; stream !== undefined; stream = streams[next++]) {
        let turn: NodeJS.Timeout | undefined;
        await Promise.race([
          stream.drain(),
          new Promise<void>((resolve) => (turn = setTimeout(resolve, REDRAIN_TURN_MS))),
        ]);
        clearTimeout(turn);
      }
    };
    await Promise.all(Array.from({ length: Math.min(REDRAIN_CONCURRENCY, streams.length) }, worker));
  }

  /** Opens a stream: claims the device in presence (displacing an older stream), then drains its mailbox. */
  async open(device: AuthenticatedDevice, outlet: StreamOutlet): Promise<DeliveryStream> {
    const deviceKey = `${device.accountId}.${device.deviceId}`;
    const stream: DeliveryStream = new DeliveryStream(
      device,
      this.upstream,
      this.relay,
      this.vaultReports,
      outlet,
      () => {
        this.streams.delete(stream.id);
        this.streamsByDevice.delete(deviceKey, stream);
        void this.upstream.presence
          .releaseStream({ device, streamId: stream.id })
          .catch((error: unknown) => this.logger.warn(`release failed: ${messageOf(error)}`));
      },
      this.settings,
      this.metrics,
      this.logger,
    );
    this.streams.set(stream.id, stream);
    this.streamsByDevice.add(deviceKey, stream);
    try {
      await this.upstream.presence.claimStream({
        device,
        gatewayId: this.env.GATEWAY_ID,
        streamId: stream.id,
      });
    } catch (error) {
      stream.close();
      throw error;
    }
    void stream.drain();
    return stream;
  }

  /** Hands a device's acknowledgements to the relay, which deletes those envelopes. */
  async forwardAcks(device: AuthenticatedDevice, guids: string[]): Promise<void> {
    await this.relay.ack({ ...device, guids });
  }

  /** The devices of every open stream, for the presence heartbeat. */
  devices(): AuthenticatedDevice[] {
    return [...this.streams.values()].map((stream) => stream.device);
  }

  private snapshot(): DeliverySnapshot {
    const snapshot = {
      streams: 0,
      inFlightEnvelopes: 0,
      inFlightBytes: 0,
      waitingForAcknowledgements: 0,
      waitingForClient: 0,
      awaitingRetry: 0,
      longestFailureStreak: 0,
    };
    for (const stream of this.streams.values()) stream.addTo(snapshot);
    return snapshot;
  }

  /**
   * Ends this gateway's streams of devices whose credentials were revoked
   * (signed out, or a rotated secret), as soon as it hears; presence's
   * EndStreams, called by the gateway that revoked them, does the same
   * wherever presence knows them to be.
   */
  private endRevoked(revocation: Revocation): void {
    for (const deviceId of revocation.deviceIds) {
      // Told "displaced", as presence's EndStreams tells a signed-out device's stream elsewhere.
      for (const stream of this.streamsByDevice.get(`${revocation.accountId}.${deviceId}`)) stream.displace();
    }
  }

  private onEvent(message: Buffer): void {
    let event: gatewayEvents.Event;
    try {
      event = gatewayEvents.decode(message);
    } catch {
      this.logger.warn('ignoring an undecodable gateway event');
      return;
    }
    const stream = this.streams.get(event.streamId);
    if (!stream) return;
    if (event.displaced) stream.displace();
    else if (event.newMail) stream.offer(event.newMail.mail);
    else if (event.ephemeral) stream.pushEphemeral(event.ephemeral);
    else if (event.vaultAttemptFailed) stream.pushVaultReport(event.vaultAttemptFailed);
  }

  /** On shutdown every stream ends; its client reconnects to another gateway and gets what was not acknowledged. */
  async onApplicationShutdown(): Promise<void> {
    for (const stream of [...this.streams.values()]) stream.close();
    await this.subscription?.close();
  }
}
