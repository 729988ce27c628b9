import { multiRecipientTopic } from '@sotto/contracts';
import { EnvelopeType, type Envelope } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import type { MultiRecipientRecord } from '@sotto/contracts/generated/sotto/relay/v1/relay';

/**
 * The envelopes a multi-recipient record stands for: one sealed envelope per
 * recipient device, its content libsignal's copy for that recipient (the
 * same for all of its devices), its GUID derived from the record's, so a
 * record routed again inserts nothing twice. Throws if the message does not
 * parse, which Send checked before logging it.
 */
export function copiesOf(record: MultiRecipientRecord): Envelope[] {
  const parsed = multiRecipientTopic.parseSentMessage(record.message);
  if (!parsed.ok) throw new Error(`message ${parsed.reason}`);
  const { message, recipients } = parsed.value;
  const byAccount = new Map(recipients.map((recipient) => [recipient.accountId, recipient.recipient]));
  return record.recipients.flatMap(({ accountId, deviceIds }) => {
    const recipient = byAccount.get(accountId);
    if (recipient === undefined) throw new Error(`recipient ${accountId} is not in the message`);
    const content = Buffer.from(message.messageForRecipient(recipient));
    return deviceIds.map((deviceId) => ({
      ...sealedCopy(multiRecipientTopic.copyGuid(record.guid, accountId, deviceId), accountId, deviceId),
      clientTimestampMs: record.clientTimestampMs,
      serverTimestampMs: record.serverTimestampMs,
      ephemeral: false,
      content,
    }));
  });
}

/** A copy of a multi-recipient send for one device, as every sealed envelope is kept: no source. */
export function sealedCopy(
  guid: string,
  accountId: string,
  deviceId: number,
): Pick<
  Envelope,
  'guid' | 'type' | 'sourceAccountId' | 'sourceDeviceId' | 'destinationAccountId' | 'destinationDeviceId'
> {
  return {
    guid,
    type: EnvelopeType.ENVELOPE_TYPE_UNIDENTIFIED_SENDER,
    sourceAccountId: '',
    sourceDeviceId: 0,
    destinationAccountId: accountId,
    destinationDeviceId: deviceId,
  };
}
