import { EnvelopeType, type OutgoingEnvelope } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import type { SendRequest } from '@sotto/contracts/generated/sotto/gateway/v1/gateway';

/** The public Send of these envelopes (one per device of the account) to the account, stamped with this client's clock. */
export function sendRequest(
  destinationAccountId: string,
  envelopes: OutgoingEnvelope[],
  { ephemeral = false }: { readonly ephemeral?: boolean } = {},
): SendRequest {
  return { destinationAccountId, clientTimestampMs: String(Date.now()), ephemeral, envelopes };
}

/**
 * A Send of one envelope of opaque content, as load generators and tests of
 * the server send it: the platform routes what it cannot read, so any bytes
 * will do. It goes to the destination's device 1 unless another is named.
 */
export function opaqueSendRequest(
  destination: { readonly accountId: string; readonly registrationId: number; readonly deviceId?: number },
  content: Uint8Array,
): SendRequest {
  return sendRequest(destination.accountId, [
    {
      destinationDeviceId: destination.deviceId ?? 1,
      destinationRegistrationId: destination.registrationId,
      type: EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT,
      content,
    },
  ]);
}
