import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { gatewayEvents } from '@sotto/contracts';
import type { VaultAttemptFailed } from '@sotto/contracts/generated/sotto/common/v1/backup';
import type { Envelope } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import type { ConnectResponse } from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { REDIS, type Redis } from '@sotto/platform/redis';
import type { AuthenticatedDevice } from '../auth/authenticator';
import { CredentialRevocations, type Revocation } from '../auth/credential-revocations';
import { GATEWAY_ENV, type GatewayEnv } from '../env';
import { Upstream } from '../upstream/upstream';
import { VaultReports } from '../vault/vault-reports';

const PAGE = 100;
/** Below this many one-time keys of either kind, a device is asked to upload more. */
export const PREKEYS_LOW = 10;

/** One device's open Connect stream on this gateway. */
export class DeliveryStream {
  readonly id = randomUUID();
  private lastSequence = '0';
  private draining = false;
  private drainAgain = false;
  private reportedEmpty = false;
  private closed = false;
  /** Failed tries on the account's vault to tell this device of, asked for while the backlog drains. */
  private vaultReport?: Promise<VaultAttemptFailed | undefined>;

  constructor(
    readonly device: AuthenticatedDevice,
    private readonly upstream: Upstream,
    private readonly vaultReports: VaultReports,
    private readonly push: (message: ConnectResponse) => void,
    private readonly end: () => void,
    private readonly logger: Logger,
  ) {}

  /**
   * Sends everything queued after what this stream already sent, in order.
   * Drains never overlap: a nudge during a drain makes it go round once more.
   */
  async drain(): Promise<void> {
    if (this.draining) {
      this.drainAgain = true;
      return;
    }
    this.draining = true;
    this.vaultReport ??= this.vaultReports.pending(this.device.accountId);
    try {
      do {
        do {
          this.drainAgain = false;
          for (;;) {
            const page = await this.upstream.relay.readMailbox({
              ...this.device,
              afterSequence: this.lastSequence,
              limit: PAGE,
              maxBytes: 0,
            });
            for (const queued of page.envelopes) {
              if (this.closed) return;
              if (queued.envelope) this.push({ envelope: queued.envelope });
              this.lastSequence = queued.sequence;
            }
            if (page.drained || page.envelopes.length === 0) break;
          }
        } while (this.drainAgain && !this.closed);
        if (!this.reportedEmpty && !this.closed) {
          this.reportedEmpty = true;
          // Before QueueEmpty, so a client that stops listening there still hears of it.
          const report = await this.vaultReport;
          if (report) this.pushVaultReport(report);
          if (this.closed) return;
          this.push({ queueEmpty: {} });
          await this.checkPreKeys();
        }
        // Mail that arrived while the vault and the prekeys were asked about.
      } while (this.drainAgain && !this.closed);
    } catch (error) {
      this.logger.warn(
        `drain of ${this.device.accountId}.${this.device.deviceId} failed: ${(error as Error).message}`,
      );
    } finally {
      this.draining = false;
    }
  }

  /** A failed password try on the account's vault, as presence or the vault itself reported it. */
  pushVaultReport(report: VaultAttemptFailed): void {
    if (!this.closed) this.push({ vaultAttemptFailed: report });
  }

  /** Ephemeral envelopes are pushed as they come, never queued; acknowledging them is harmless. */
  pushEphemeral(envelope: Envelope): void {
    if (!this.closed) this.push({ envelope });
  }

  async acknowledge(guids: readonly string[]): Promise<void> {
    if (guids.length === 0) return;
    await this.upstream.relay.ack({ ...this.device, guids: [...guids] });
  }

  displace(): void {
    if (this.closed) return;
    this.push({ displaced: {} });
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.end();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private async checkPreKeys(): Promise<void> {
    const counts = await this.upstream.directory.getPreKeyCount(this.device);
    if (counts.ecCount < PREKEYS_LOW || counts.kyberCount < PREKEYS_LOW) {
      this.push({ preKeysLow: { ecCount: counts.ecCount, kyberCount: counts.kyberCount } });
    }
  }
}

/**
 * The delivery streams this gateway holds. Presence records which gateway
 * holds each device; this gateway listens on its own Redis channel for "new
 * mail" and "displaced" events about its streams, and heartbeats its claims.
 */
@Injectable()
export class DeliveryStreams implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(DeliveryStreams.name);
  private readonly streams = new Map<string, DeliveryStream>();
  // The same streams by device ("<account>.<device>"), for revocations.
  private readonly streamsByDevice = new Map<string, Set<DeliveryStream>>();
  private subscriber?: Redis;
  private heartbeat?: NodeJS.Timeout;

  constructor(
    private readonly upstream: Upstream,
    private readonly vaultReports: VaultReports,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(GATEWAY_ENV) private readonly env: GatewayEnv,
    revocations: CredentialRevocations,
  ) {
    revocations.onRevocation((revocation) => this.endRevoked(revocation));
  }

  async onModuleInit(): Promise<void> {
    this.subscriber = this.redis.duplicate();
    this.subscriber.on('messageBuffer', (_channel: Buffer, message: Buffer) => this.onEvent(message));
    await this.subscriber.subscribe(gatewayEvents.channel(this.env.GATEWAY_ID));
    this.heartbeat = setInterval(() => void this.beat(), this.env.PRESENCE_HEARTBEAT_MS);
  }

  /** Opens a stream: claims the device in presence (displacing an older stream), then drains its mailbox. */
  async open(
    device: AuthenticatedDevice,
    push: (message: ConnectResponse) => void,
    end: () => void,
  ): Promise<DeliveryStream> {
    const deviceKey = `${device.accountId}.${device.deviceId}`;
    const stream: DeliveryStream = new DeliveryStream(
      device,
      this.upstream,
      this.vaultReports,
      push,
      () => {
        this.streams.delete(stream.id);
        const sameDevice = this.streamsByDevice.get(deviceKey);
        sameDevice?.delete(stream);
        if (sameDevice?.size === 0) this.streamsByDevice.delete(deviceKey);
        void this.upstream.presence
          .releaseStream({ device, streamId: stream.id })
          .catch((error: unknown) =>
            this.logger.warn(`release failed: ${error instanceof Error ? error.message : String(error)}`),
          );
        end();
      },
      this.logger,
    );
    this.streams.set(stream.id, stream);
    const sameDevice = this.streamsByDevice.get(deviceKey) ?? new Set<DeliveryStream>();
    this.streamsByDevice.set(deviceKey, sameDevice.add(stream));
    await this.upstream.presence.claimStream({ device, gatewayId: this.env.GATEWAY_ID, streamId: stream.id });
    void stream.drain();
    return stream;
  }

  /**
   * Ends this gateway's streams of devices whose credentials were revoked
   * (signed out, or a rotated secret), as soon as it hears; presence's
   * EndStreams, called by the gateway that revoked them, does the same
   * wherever presence knows them to be.
   */
  private endRevoked(revocation: Revocation): void {
    for (const deviceId of revocation.deviceIds) {
      const streams = this.streamsByDevice.get(`${revocation.accountId}.${deviceId}`);
      // Told "displaced", as presence's EndStreams tells a signed-out device's stream elsewhere.
      for (const stream of [...(streams ?? [])]) stream.displace();
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
    else if (event.newMail) void stream.drain();
    else if (event.ephemeral) stream.pushEphemeral(event.ephemeral);
    else if (event.vaultAttemptFailed) stream.pushVaultReport(event.vaultAttemptFailed);
  }

  private async beat(): Promise<void> {
    const devices = [...this.streams.values()].map((stream) => stream.device);
    if (devices.length === 0) return;
    try {
      await this.upstream.presence.heartbeat({ gatewayId: this.env.GATEWAY_ID, devices });
    } catch (error) {
      this.logger.warn(`presence heartbeat failed: ${(error as Error).message}`);
    }
  }

  /** On shutdown every stream ends; its client reconnects to another gateway and gets what was not acknowledged. */
  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.heartbeat);
    for (const stream of [...this.streams.values()]) stream.close();
    await this.subscriber?.quit().catch(() => this.subscriber?.disconnect());
  }
}
