import type { Envelope } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import { SottoError } from '../errors';
import { pad, unpad } from '../padding';
import type { HistoryEntry } from '../profile';

/**
 * What travels inside the encryption; the server never sees it. A message
 * (no `kind`, as the first version had), a copy of one this account sent from
 * another of its devices, or a typing indicator, which is never kept.
 */
export type Content =
  | {
      readonly v: 1;
      readonly kind?: 'message';
      readonly from: string;
      readonly text: string;
      readonly sentAt: string;
    }
  | {
      readonly v: 1;
      readonly kind: 'sync';
      readonly from: string;
      readonly to: string;
      readonly text: string;
      readonly sentAt: string;
    }
  | { readonly v: 1; readonly kind: 'typing'; readonly from: string };

/** The plaintext to encrypt: JSON, padded so that its length says little. */
export function encodeContent(content: Content): Uint8Array<ArrayBuffer> {
  return pad(Buffer.from(JSON.stringify(content), 'utf8'));
}

/** Reads a decrypted envelope. Only this account's own devices may speak for it. */
export function decodeContent(
  plaintext: Uint8Array,
  envelope: Pick<Envelope, 'guid' | 'sourceAccountId'>,
  ownAccountId: string,
): Content {
  const content = JSON.parse(Buffer.from(unpad(plaintext)).toString('utf8')) as Content;
  if (content.kind === 'sync' && envelope.sourceAccountId !== ownAccountId) {
    throw new SottoError(`envelope ${envelope.guid}: a sync copy from another account`);
  }
  return content;
}

function pick(content: { from: string; to: string; text: string; sentAt: string }) {
  return { from: content.from, to: content.to, text: content.text, sentAt: content.sentAt };
}

/**
 * What a received content adds to this device's history: a message to this
 * user, a copy of one this account sent elsewhere, or nothing (typing).
 */
export function receivedEntry(content: Content, guid: string, ownUsername: string): HistoryEntry | undefined {
  if (content.kind === 'sync') return { kind: 'message', direction: 'out', ...pick(content), guid };
  if (content.kind === 'typing') return undefined;
  return { kind: 'message', direction: 'in', ...pick({ ...content, to: ownUsername }), guid };
}
