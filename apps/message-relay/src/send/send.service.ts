import { Inject, Injectable } from '@nestjs/common';
import { Metadata, status } from '@grpc/grpc-js';
import {
  EnvelopeType,
  MismatchedDevices,
  type Envelope,
} from '@sotto/contracts/generated/sotto/common/v1/envelope';
import type { SendRequest, SendResponse } from '@sotto/contracts/generated/sotto/relay/v1/relay';
import { SameTurnBatch } from '@sotto/platform/batching';
import { grpcError, refuse, requireAccountId } from '@sotto/platform/grpc';
import { RELAY_ENV, type RelayEnv } from '../env';
import { MailboxMetrics } from '../mailbox/mailbox-metrics';
import { MailboxStore, type DeviceAddress } from '../mailbox/mailbox.store';
import { FaultInjection } from '../routing/fault-injection';
import { Upstream } from '../upstream/upstream';
import { DeviceLists } from './device-lists';
import { EnvelopeLog } from './envelope-log';
import { MailboxRoom } from './mailbox-room';
import { uuidv7 } from './uuidv7';

/** The largest envelope the relay accepts; bigger payloads belong in attachments. */
export const MAX_ENVELOPE_BYTES = 256 * 1024;
/** Trailer that carries the exact device lists of a FAILED_PRECONDITION answer. */
export const MISMATCHED_DEVICES_TRAILER = 'sotto-mismatched-devices-bin';

/** What a send carries besides its source, which the relay takes from the authenticated caller. */
export type SendInput = Omit<SendRequest, 'sourceAccountId' | 'sourceDeviceId' | 'sealed'>;

/**
 * The source of a sealed send: nobody the server knows. Its envelopes are
 * logged, queued and delivered with an empty source account and device 0.
 */
export const SEALED = 'sealed';
export type SendSource = DeviceAddress | typeof SEALED;

const ENVELOPE_TYPES: ReadonlySet<EnvelopeType> = new Set([
  EnvelopeType.ENVELOPE_TYPE_PREKEY_MESSAGE,
  EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT,
  EnvelopeType.ENVELOPE_TYPE_UNIDENTIFIED_SENDER,
  EnvelopeType.ENVELOPE_TYPE_SENDER_KEY,
]);

function invalid(message: string): Error {
  return grpcError(status.INVALID_ARGUMENT, message);
}

@Injectable()
export class SendService {
  /** The Sends of one batched call check their mailboxes' room in one round trip. */
  private readonly usage = new SameTurnBatch((devices: DeviceAddress[]) => this.mailboxes.usage(devices));
  /** Mailboxes far from their caps are not asked again for a moment (MAILBOX_ROOM_CACHE_MS). */
  private readonly room: MailboxRoom;

  constructor(
    private readonly upstream: Upstream,
    private readonly log: EnvelopeLog,
    private readonly faults: FaultInjection,
    private readonly mailboxes: MailboxStore,
    private readonly mailboxMetrics: MailboxMetrics,
    private readonly deviceLists: DeviceLists,
    @Inject(RELAY_ENV) private readonly env: RelayEnv,
  ) {
    this.room = new MailboxRoom(
      { envelopes: env.MAILBOX_MAX_ENVELOPES, bytes: env.MAILBOX_MAX_BYTES },
      { ttlMs: env.MAILBOX_ROOM_CACHE_MS, maxMailboxes: env.MAILBOX_ROOM_CACHE_MAX_MAILBOXES, now: Date.now },
    );
  }

  /**
   * Accepts one message for every device of the destination account (and the
   * sender's other devices, when it writes to itself). Answers only once Kafka
   * has the envelopes: from then on they are durable. Ephemeral envelopes
   * bypass Kafka and the mailboxes and reach only devices online now.
   */
  async send(source: SendSource, input: SendInput): Promise<SendResponse> {
    // Checked here, not only by the directory: device lists are read in batches, and one malformed
    // id must not fail the others' sends.
    requireAccountId(input.destinationAccountId, 'destination_account_id');
    if (!/^\d{1,16}$/.test(input.clientTimestampMs))
      throw invalid('client_timestamp_ms: must be a whole number');
    // To itself a sender may send nothing: that only checks it knows all its other devices (for sync).
    if (
      input.envelopes.length === 0 &&
      (source === SEALED || input.destinationAccountId !== source.accountId)
    ) {
      throw invalid('envelopes: at least one is required');
    }
    const seen = new Set<number>();
    input.envelopes.forEach((envelope, index) => {
      const field = `envelopes[${index}]`;
      if (envelope.content.length === 0) throw invalid(`${field}.content: is required`);
      if (envelope.content.length > MAX_ENVELOPE_BYTES) {
        throw refuse(
          'too-large',
          `${field}.content: ${envelope.content.length} bytes is over the ${MAX_ENVELOPE_BYTES}-byte limit`,
        );
      }
      if (seen.has(envelope.destinationDeviceId)) {
        throw invalid(`${field}.destination_device_id: device ${envelope.destinationDeviceId} appears twice`);
      }
      seen.add(envelope.destinationDeviceId);
      if (!ENVELOPE_TYPES.has(envelope.type)) throw invalid(`${field}.type: must be a known envelope type`);
      if (source === SEALED && envelope.type !== EnvelopeType.ENVELOPE_TYPE_UNIDENTIFIED_SENDER) {
        throw invalid(`${field}.type: a sealed send carries only ENVELOPE_TYPE_UNIDENTIFIED_SENDER`);
      }
    });
    await this.checkDevices(source, input);
    if (input.envelopes.length === 0) return { guids: [], serverTimestampMs: String(Date.now()) };

    const serverTimestampMs = String(Date.now());
    const records: Envelope[] = input.envelopes.map((envelope) => ({
      guid: uuidv7(),
      type: envelope.type,
      sourceAccountId: source === SEALED ? '' : source.accountId,
      sourceDeviceId: source === SEALED ? 0 : source.deviceId,
      destinationAccountId: input.destinationAccountId,
      destinationDeviceId: envelope.destinationDeviceId,
      clientTimestampMs: input.clientTimestampMs,
      serverTimestampMs,
      ephemeral: input.ephemeral,
      content: Buffer.from(envelope.content),
    }));
    if (input.ephemeral) {
      // Typing indicators and the like: only devices online now get them, and nothing is kept.
      await this.upstream.presence.deliverEphemeral({ envelopes: records });
      return { guids: records.map((record) => record.guid), serverTimestampMs };
    }
    await this.checkRoom(input);
    this.faults.accepted(records.map((record) => record.guid));
    await this.log.append(records);
    return { guids: records.map((record) => record.guid), serverTimestampMs };
  }

  /**
   * Refuses the whole message, before anything is logged, when any destination
   * mailbox is at its cap: nothing already queued is dropped to make room. Sends
   * racing each other can take a mailbox a little past its cap (by at most what
   * they carry); what Kafka accepted is always delivered. A mailbox far below its
   * caps is taken at this relay's recent estimate instead of asked (see MailboxRoom).
   */
  private async checkRoom(input: SendInput): Promise<void> {
    const devices = input.envelopes.map((e) => ({
      accountId: input.destinationAccountId,
      deviceId: e.destinationDeviceId,
    }));
    const estimates = devices.map((device, index) =>
      this.room.estimate(device, input.envelopes[index]?.content.length ?? 0),
    );
    const unknown = devices.filter((_, index) => estimates[index] === undefined);
    const read = unknown.length === 0 ? [] : await this.usage.add(unknown);
    unknown.forEach((device, index) => {
      const found = read[index];
      if (found !== undefined) this.room.checked(device, found);
    });
    let next = 0;
    const usage = estimates.map((estimate) => estimate ?? read[next++]);
    input.envelopes.forEach((envelope, index) => {
      const { envelopes, bytes } = usage[index] ?? { envelopes: 0, bytes: 0 };
      this.mailboxMetrics.found(envelopes);
      const cap =
        envelopes + 1 > this.env.MAILBOX_MAX_ENVELOPES
          ? (`${this.env.MAILBOX_MAX_ENVELOPES} envelopes` as const)
          : bytes + envelope.content.length > this.env.MAILBOX_MAX_BYTES
            ? (`${this.env.MAILBOX_MAX_BYTES} bytes` as const)
            : undefined;
      if (cap === undefined) return;
      this.mailboxMetrics.refused(cap.endsWith('bytes') ? 'bytes' : 'envelopes');
      throw refuse(
        'mailbox-full',
        `mailbox full: device ${envelope.destinationDeviceId} of the destination holds ${envelopes} undelivered envelopes (${bytes} bytes), at its cap of ${cap}; nothing was sent`,
      );
    });
    devices.forEach((device, index) => this.room.added(device, input.envelopes[index]?.content.length ?? 0));
  }

  /**
   * Refuses a message whose device list is not exactly the destination's, with
   * the lists to fix. A disagreement with a cached list is checked again
   * against the directory: only the directory's list refuses a send.
   */
  private async checkDevices(source: SendSource, input: SendInput): Promise<void> {
    const cached = await this.deviceLists.get(input.destinationAccountId);
    let mismatch = mismatchOf(source, input, cached.devices);
    if (mismatch !== undefined && cached.source === 'cache') {
      mismatch = mismatchOf(
        source,
        input,
        (await this.deviceLists.get(input.destinationAccountId, true)).devices,
      );
    }
    if (mismatch === undefined) return;
    const metadata = new Metadata();
    metadata.set(MISMATCHED_DEVICES_TRAILER, Buffer.from(MismatchedDevices.encode(mismatch).finish()));
    const list = (ids: number[]): string => `[${ids.join(', ')}]`;
    throw refuse(
      'device-list-mismatch',
      `device list mismatch: missing ${list(mismatch.missingDeviceIds)}, extra ${list(mismatch.extraDeviceIds)}, stale ${list(mismatch.staleDeviceIds)}`,
      metadata,
    );
  }
}

/** How the devices a send names differ from the destination's, or undefined when they don't. */
function mismatchOf(
  source: SendSource,
  input: SendInput,
  devices: readonly { deviceId: number; registrationId: number }[],
): MismatchedDevices | undefined {
  // A sealed sender's own device is not known, so none is left out: sync copies go authenticated.
  const self = source !== SEALED && input.destinationAccountId === source.accountId ? source : undefined;
  const expected = new Map(
    devices
      .filter((device) => device.deviceId !== self?.deviceId)
      .map((device) => [device.deviceId, device.registrationId]),
  );
  const given = new Map(input.envelopes.map((e) => [e.destinationDeviceId, e.destinationRegistrationId]));
  const mismatch: MismatchedDevices = {
    missingDeviceIds: [...expected.keys()].filter((id) => !given.has(id)).sort((a, b) => a - b),
    extraDeviceIds: [...given.keys()].filter((id) => !expected.has(id)).sort((a, b) => a - b),
    staleDeviceIds: [...given]
      .filter(([id, registrationId]) => expected.has(id) && expected.get(id) !== registrationId)
      .map(([id]) => id)
      .sort((a, b) => a - b),
  };
  const differences =
    mismatch.missingDeviceIds.length + mismatch.extraDeviceIds.length + mismatch.staleDeviceIds.length;
  return differences === 0 ? undefined : mismatch;
}
