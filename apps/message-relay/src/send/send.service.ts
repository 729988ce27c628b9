import { Inject, Injectable } from '@nestjs/common';
import { Metadata, status } from '@grpc/grpc-js';
import { multiRecipientTopic } from '@sotto/contracts';
import {
  EnvelopeType,
  MismatchedDevices,
  MultiRecipientMismatch,
  type Envelope,
} from '@sotto/contracts/generated/sotto/common/v1/envelope';
import {
  type SendMultiRecipientRequest,
  type SendMultiRecipientResponse,
  type SendRequest,
  type SendResponse,
} from '@sotto/contracts/generated/sotto/relay/v1/relay';
import { SameTurnBatch } from '@sotto/platform/batching';
import { grpcError, refuse, requireAccountId } from '@sotto/platform/grpc';
import { RELAY_ENV, type RelayEnv } from '../env';
import { MailboxMetrics } from '../mailbox/mailbox-metrics';
import { MailboxStore, type DeviceAddress } from '../mailbox/mailbox.store';
import { FaultInjection } from '../routing/fault-injection';
import { sealedCopy } from '../routing/multi-recipient-copies';
import { Upstream } from '../upstream/upstream';
import { DeviceLists } from './device-lists';
import { EnvelopeLog, multiRecipientLogRecord } from './envelope-log';
import { MailboxRoom } from './mailbox-room';
import { uuidv7 } from './uuidv7';

/** The largest envelope the relay accepts; bigger payloads belong in attachments. */
export const MAX_ENVELOPE_BYTES = 256 * 1024;
/** Trailer that carries the exact device lists of a FAILED_PRECONDITION answer. */
export const MISMATCHED_DEVICES_TRAILER = 'sotto-mismatched-devices-bin';
/**
 * The largest record of a multi-recipient send (the message and its
 * recipients' devices): under the broker's default message.max.bytes (1 MiB),
 * as one record must be.
 */
export const MAX_MULTI_RECIPIENT_RECORD_BYTES = 1_000_000;
/** Trailer of a multi-recipient send's FAILED_PRECONDITION: every recipient's mismatch. */
export const MULTI_RECIPIENT_MISMATCH_TRAILER = 'sotto-multi-recipient-mismatch-bin';

/** A copy of a message for one device, as the mailbox-room check weighs it. */
interface Copy {
  readonly device: DeviceAddress;
  readonly bytes: number;
}

/** Devices a send names, by device id, with the registration id each was encrypted to. */
type GivenDevices = ReadonlyMap<number, number>;

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
    await this.checkRoom(
      input.envelopes.map((envelope) => ({
        device: { accountId: input.destinationAccountId, deviceId: envelope.destinationDeviceId },
        bytes: envelope.content.length,
      })),
      'of the destination',
    );
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
  private async checkRoom(
    copies: readonly Copy[],
    whose: ((device: DeviceAddress) => string) | string,
  ): Promise<void> {
    const owner = typeof whose === 'string' ? () => whose : whose;
    const devices = copies.map((copy) => copy.device);
    const estimates = copies.map((copy) => this.room.estimate(copy.device, copy.bytes));
    const unknown = devices.filter((_, index) => estimates[index] === undefined);
    const read = unknown.length === 0 ? [] : await this.usage.add(unknown);
    unknown.forEach((device, index) => {
      const found = read[index];
      if (found !== undefined) this.room.checked(device, found);
    });
    let next = 0;
    const usage = estimates.map((estimate) => estimate ?? read[next++]);
    copies.forEach((copy, index) => {
      const { envelopes, bytes } = usage[index] ?? { envelopes: 0, bytes: 0 };
      this.mailboxMetrics.found(envelopes);
      const cap =
        envelopes + 1 > this.env.MAILBOX_MAX_ENVELOPES
          ? (`${this.env.MAILBOX_MAX_ENVELOPES} envelopes` as const)
          : bytes + copy.bytes > this.env.MAILBOX_MAX_BYTES
            ? (`${this.env.MAILBOX_MAX_BYTES} bytes` as const)
            : undefined;
      if (cap === undefined) return;
      this.mailboxMetrics.refused(cap.endsWith('bytes') ? 'bytes' : 'envelopes');
      throw refuse(
        'mailbox-full',
        `mailbox full: device ${copy.device.deviceId} ${owner(copy.device)} holds ${envelopes} undelivered envelopes (${bytes} bytes), at its cap of ${cap}; nothing was sent`,
      );
    });
    copies.forEach((copy) => this.room.added(copy.device, copy.bytes));
  }

  /**
   * Refuses a message whose device list is not exactly the destination's, with
   * the lists to fix. A disagreement with a cached list is checked again
   * against the directory: only the directory's list refuses a send.
   */
  private async checkDevices(source: SendSource, input: SendInput): Promise<void> {
    // A sealed sender's own device is not known, so none is left out: sync copies go authenticated.
    const self =
      source !== SEALED && input.destinationAccountId === source.accountId ? source.deviceId : undefined;
    const given = new Map(input.envelopes.map((e) => [e.destinationDeviceId, e.destinationRegistrationId]));
    const mismatch = await this.mismatchOf(input.destinationAccountId, given, self);
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

  /**
   * How `given` differs from the account's devices (leaving out `self`, the
   * sender's own), or undefined. A disagreement with a cached list is checked
   * again against the directory: only the directory's list refuses a send.
   */
  private async mismatchOf(
    accountId: string,
    given: GivenDevices,
    self?: number,
  ): Promise<MismatchedDevices | undefined> {
    const cached = await this.deviceLists.get(accountId);
    const mismatch = mismatchOf(given, cached.devices, self);
    if (mismatch === undefined || cached.source !== 'cache') return mismatch;
    return mismatchOf(given, (await this.deviceLists.get(accountId, true)).devices, self);
  }

  /**
   * A multi-recipient send (a sealed group message in one upload): every
   * recipient's devices are checked as Send checks them and every mismatch
   * refused at once, every copy's mailbox must have room, and then the whole
   * send is one record of sotto.multi-recipient.v1: answered once Kafka holds
   * it, so either every copy is accepted or none is. Routing splits it.
   */
  async sendMultiRecipient(input: SendMultiRecipientRequest): Promise<SendMultiRecipientResponse> {
    if (!/^\d{1,16}$/.test(input.clientTimestampMs))
      throw invalid('client_timestamp_ms: must be a whole number');
    const parsed = multiRecipientTopic.parseSentMessage(input.message);
    if (!parsed.ok) throw invalid(`message: ${parsed.reason}`);
    const { message, recipients } = parsed.value;
    // Every copy of one message has the same length: a recipient's keys are of fixed size.
    const [first] = recipients;
    const copyBytes = first === undefined ? 0 : message.messageForRecipient(first.recipient).length;
    if (copyBytes > MAX_ENVELOPE_BYTES) {
      throw refuse(
        'too-large',
        `message: each copy is ${copyBytes} bytes, over the ${MAX_ENVELOPE_BYTES}-byte limit`,
      );
    }

    const mismatches = await Promise.all(
      recipients.map(async ({ accountId, devices }) => ({
        accountId,
        devices: await this.mismatchOf(
          accountId,
          new Map(devices.map((device) => [device.deviceId, device.registrationId])),
        ),
      })),
    );
    const refused = mismatches.filter(
      (mismatch): mismatch is { accountId: string; devices: MismatchedDevices } =>
        mismatch.devices !== undefined,
    );
    if (refused.length > 0) {
      const metadata = new Metadata();
      metadata.set(
        MULTI_RECIPIENT_MISMATCH_TRAILER,
        Buffer.from(MultiRecipientMismatch.encode({ recipients: refused }).finish()),
      );
      throw refuse(
        'device-list-mismatch',
        `device list mismatch for ${refused.length} of ${recipients.length} recipients (${refused.map((r) => r.accountId).join(', ')}); nothing was sent`,
        metadata,
      );
    }

    const guid = uuidv7();
    const serverTimestampMs = String(Date.now());
    const copies = recipients.flatMap(({ accountId, devices }) =>
      devices.map(({ deviceId }) => ({
        device: { accountId, deviceId },
        bytes: copyBytes,
        guid: multiRecipientTopic.copyGuid(guid, accountId, deviceId),
      })),
    );
    if (input.ephemeral) {
      // Typing indicators to a group: only devices online now get them, and nothing is kept.
      await this.upstream.presence.deliverEphemeral({
        envelopes: recipients.flatMap(({ accountId, devices, recipient }) => {
          const content = Buffer.from(message.messageForRecipient(recipient));
          return devices.map(({ deviceId }) => ({
            ...sealedCopy(multiRecipientTopic.copyGuid(guid, accountId, deviceId), accountId, deviceId),
            clientTimestampMs: input.clientTimestampMs,
            serverTimestampMs,
            ephemeral: true,
            content,
          }));
        }),
      });
      return { serverTimestampMs };
    }
    const record = {
      guid,
      clientTimestampMs: input.clientTimestampMs,
      serverTimestampMs,
      message: Buffer.from(input.message),
      recipients: recipients.map(({ accountId, devices }) => ({
        accountId,
        deviceIds: devices.map((device) => device.deviceId),
      })),
    };
    const logRecord = multiRecipientLogRecord(record);
    const recordBytes = logRecord.value.length;
    if (recordBytes > MAX_MULTI_RECIPIENT_RECORD_BYTES) {
      throw refuse(
        'too-large',
        `message: ${recordBytes} bytes with its recipients, over the ${MAX_MULTI_RECIPIENT_RECORD_BYTES}-byte limit of one record`,
      );
    }
    await this.checkRoom(copies, (device) => `of recipient ${device.accountId}`);
    this.faults.accepted(copies.map((copy) => copy.guid));
    await this.log.appendMultiRecipient(logRecord);
    return { serverTimestampMs };
  }
}

/** How the devices a send names differ from the account's (leaving out `self`), or undefined when they don't. */
function mismatchOf(
  given: GivenDevices,
  devices: readonly { deviceId: number; registrationId: number }[],
  self?: number,
): MismatchedDevices | undefined {
  const expected = new Map(
    devices
      .filter((device) => device.deviceId !== self)
      .map((device) => [device.deviceId, device.registrationId]),
  );
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
