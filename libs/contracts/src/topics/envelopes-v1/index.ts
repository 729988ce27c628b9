import { Envelope } from '../../generated/sotto/common/v1/envelope';
import { encodeToBuffer } from '../../wire-encoding';

/**
 * The envelope log. Every accepted envelope is one record, keyed by the
 * recipient's account id so that one account's envelopes stay in order on one
 * partition. The value is a protobuf `sotto.common.v1.Envelope` with its GUID
 * and server timestamp already assigned.
 */
export const TOPIC = 'sotto.envelopes.v1';

export type Key = string;
export type Value = Envelope;

export function encodeKey(recipientAccountId: string): Buffer {
  return Buffer.from(recipientAccountId, 'utf8');
}

export function encodeValue(envelope: Envelope): Buffer {
  return encodeToBuffer(Envelope, envelope);
}

export function decodeValue(bytes: Uint8Array): Envelope {
  return Envelope.decode(bytes);
}
