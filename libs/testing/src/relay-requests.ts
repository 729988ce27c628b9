import { EnvelopeType } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import type { SendRequest } from '@sotto/contracts/generated/sotto/relay/v1/relay';

/**
 * The relay's internal Send as a gateway makes it: from a device (1 unless named) to another
 * account's device (1 unless named), one envelope of opaque content, stamped now. The relay routes
 * what it cannot read, so any bytes will do; tests spread their own fields over it for the rest.
 */
export function relaySendRequest(
  from: { readonly accountId: string; readonly deviceId?: number },
  to: { readonly accountId: string; readonly registrationId: number; readonly deviceId?: number },
  content: Uint8Array | string,
): SendRequest {
  return {
    sourceAccountId: from.accountId,
    sourceDeviceId: from.deviceId ?? 1,
    destinationAccountId: to.accountId,
    clientTimestampMs: String(Date.now()),
    ephemeral: false,
    envelopes: [
      {
        destinationDeviceId: to.deviceId ?? 1,
        destinationRegistrationId: to.registrationId,
        type: EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT,
        content: typeof content === 'string' ? Buffer.from(content) : content,
      },
    ],
    sealed: false,
  };
}
