import { createHash } from 'node:crypto';
import { MultiRecipientRecord } from '../../generated/sotto/relay/v1/relay';
import { encodeToBuffer } from '../../wire-encoding';

/**
 * Multi-recipient sends (group messages in one upload). Every accepted send
 * is ONE record holding every copy, so it is accepted whole or not at all:
 * one record is written atomically, where copies spread over the envelope
 * topic's partitions could be half written when a produce fails, and a retry
 * would then show the written half twice. Routing splits the record into one
 * sealed envelope per recipient device.
 *
 * The key is a digest of the sorted recipient account ids: a sender's
 * successive messages to one group (the same recipients) share a partition
 * and are routed in order. Copies are not ordered with the recipients'
 * one-to-one envelopes, which sit on their own accounts' partitions.
 */
export const TOPIC = 'sotto.multi-recipient.v1';

export type Value = MultiRecipientRecord;

export function encodeKey(recipientAccountIds: readonly string[]): Buffer {
  const digest = createHash('sha256');
  for (const accountId of [...recipientAccountIds].sort()) digest.update(accountId).update('\n');
  return digest.digest().subarray(0, 16);
}

export function encodeValue(record: MultiRecipientRecord): Buffer {
  return encodeToBuffer(MultiRecipientRecord, record);
}

export function decodeValue(bytes: Uint8Array): MultiRecipientRecord {
  return MultiRecipientRecord.decode(bytes);
}

/**
 * The GUID of the copy of record `recordGuid` for one device: the record's
 * 48-bit timestamp (so copies sort as UUIDv7s do), then 74 bits of
 * SHA-256(record GUID, account, device), as a version-8 UUID. The same record
 * always gives the same GUIDs, so a record routed twice is a no-op per copy.
 */
export function copyGuid(recordGuid: string, accountId: string, deviceId: number): string {
  const bytes = createHash('sha256')
    .update(`${recordGuid}/${accountId}/${deviceId}`)
    .digest()
    .subarray(0, 16);
  Buffer.from(recordGuid.replace(/-/g, '').slice(0, 12), 'hex').copy(bytes, 0);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x80;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export {
  parseSentMessage,
  type ParsedSentMessage,
  type SentMessage,
  type SentMessageRecipient,
} from './sent-message';
