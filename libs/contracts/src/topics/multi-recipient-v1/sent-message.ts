import { Aci, ServiceId } from '@signalapp/libsignal-client';
import SealedSenderMultiRecipientMessage from '@signalapp/libsignal-client/dist/SealedSenderMultiRecipientMessage';

/** A recipient of a SentMessage: an account and the devices (with registration ids) it was encrypted to. */
export interface SentMessageRecipient {
  readonly accountId: string;
  readonly devices: readonly { readonly deviceId: number; readonly registrationId: number }[];
  /** libsignal's own handle on it, for messageForRecipient. */
  readonly recipient: ReturnType<SealedSenderMultiRecipientMessage['recipientsByServiceIdString']>[string];
}

export interface SentMessage {
  readonly message: SealedSenderMultiRecipientMessage;
  readonly recipients: readonly SentMessageRecipient[];
}

export type ParsedSentMessage =
  { readonly ok: true; readonly value: SentMessage } | { readonly ok: false; readonly reason: string };

/**
 * A libsignal sealed-sender v2 "SentMessage" (what
 * sealedSenderMultiRecipientEncrypt makes), parsed as the server parses it:
 * its recipients must be ACIs (Sotto's account ids); a PNI or anything
 * libsignal can't parse is refused with the reason.
 */
export function parseSentMessage(bytes: Uint8Array): ParsedSentMessage {
  let message: SealedSenderMultiRecipientMessage;
  let byServiceId: ReturnType<SealedSenderMultiRecipientMessage['recipientsByServiceIdString']>;
  try {
    message = new SealedSenderMultiRecipientMessage(new Uint8Array(bytes));
    byServiceId = message.recipientsByServiceIdString();
  } catch {
    return { ok: false, reason: 'is not a sealed-sender multi-recipient message' };
  }
  const recipients: SentMessageRecipient[] = [];
  for (const [serviceId, recipient] of Object.entries(byServiceId)) {
    let parsed: ServiceId;
    try {
      parsed = ServiceId.parseFromServiceIdString(serviceId);
    } catch {
      return { ok: false, reason: `recipient ${serviceId} is not a service id` };
    }
    if (!(parsed instanceof Aci))
      return { ok: false, reason: `recipient ${serviceId} is not an account (ACI)` };
    recipients.push({
      accountId: parsed.getRawUuid().toLowerCase(),
      devices: recipient.deviceIds.map((deviceId, index) => ({
        deviceId,
        registrationId: recipient.registrationIds[index] ?? 0,
      })),
      recipient,
    });
  }
  if (recipients.length === 0) return { ok: false, reason: 'has no recipients' };
  return { ok: true, value: { message, recipients } };
}
