import type { Envelope } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import { z } from 'zod';
import { GROUP_ID, signedGroupStateSchema, type SignedGroupState } from '../group-state';
import { pad, unpad } from '../padding';
import type { HistoryEntry } from '../profile';

/**
 * What travels inside the encryption; the server never sees it. A message
 * (no `kind`, as the first version had), a copy of one this account sent from
 * another of its devices, or a typing indicator, which is never kept.
 *
 * `from` is the sender's own claim, still written for clients of the first
 * version. Nothing here reads it: who sent an envelope is what the server
 * authenticated (its source account, or the sealed-sender certificate), named
 * through the directory.
 *
 * `profileKey` is the sender's profile key (base64 of 32 bytes), as Signal's
 * DataMessage.profileKey: whoever holds it may send the sender sealed messages.
 */
export type Content =
  | {
      readonly v: 1;
      readonly kind?: 'message';
      readonly from?: string;
      readonly text: string;
      readonly sentAt: string;
      readonly profileKey?: string;
    }
  | {
      readonly v: 1;
      readonly kind: 'sync';
      readonly from?: string;
      readonly to: string;
      readonly text: string;
      readonly sentAt: string;
      readonly profileKey?: string;
    }
  | { readonly v: 1; readonly kind: 'typing'; readonly from?: string; readonly profileKey?: string }
  | GroupContent;

/**
 * What groups add, over the pairwise sessions: an admin's signed new state
 * (`group-update`), a member leaving (`group-leave`, only ever for its
 * sender), this device's sender key for a group (`sender-key`: a libsignal
 * SenderKeyDistributionMessage, base64), and a group message sent pairwise
 * to a member whose access key this device lacks (`group-text`). The
 * `group-message` is what a sender key encrypts, sent once to the group.
 */
export type GroupContent =
  | {
      readonly v: 1;
      readonly kind: 'group-update';
      readonly update: SignedGroupState;
      readonly profileKey?: string;
    }
  | { readonly v: 1; readonly kind: 'group-leave'; readonly group: string; readonly profileKey?: string }
  | {
      readonly v: 1;
      readonly kind: 'sender-key';
      readonly group: string;
      readonly distribution: string;
      readonly profileKey?: string;
    }
  | {
      readonly v: 1;
      readonly kind: 'group-text' | 'group-message';
      readonly group: string;
      readonly text: string;
      readonly sentAt: string;
      readonly profileKey?: string;
    };

const GROUP_KINDS: ReadonlySet<string> = new Set([
  'group-update',
  'group-leave',
  'sender-key',
  'group-text',
  'group-message',
]);

export function isGroupContent(content: Content): content is GroupContent {
  return content.kind !== undefined && GROUP_KINDS.has(content.kind);
}

const sentAt = z.iso.datetime();
const profileKey = z.string().optional();
/** Base64 of 32 bytes, as encodeContent writes a profile key. */
const PROFILE_KEY_BASE64 = /^[A-Za-z0-9+/]{43}=$/;
const contentSchema = z.union([
  z.object({
    v: z.literal(1),
    kind: z.literal('message').optional(),
    from: z.string().optional(),
    text: z.string(),
    sentAt,
    profileKey,
  }),
  z.object({
    v: z.literal(1),
    kind: z.literal('sync'),
    from: z.string().optional(),
    to: z.string().min(1),
    text: z.string(),
    sentAt,
    profileKey,
  }),
  z.object({ v: z.literal(1), kind: z.literal('typing'), from: z.string().optional(), profileKey }),
  z.object({ v: z.literal(1), kind: z.literal('group-update'), update: signedGroupStateSchema, profileKey }),
  z.object({
    v: z.literal(1),
    kind: z.literal('group-leave'),
    group: z.string().regex(GROUP_ID),
    profileKey,
  }),
  z.object({
    v: z.literal(1),
    kind: z.literal('sender-key'),
    group: z.string().regex(GROUP_ID),
    distribution: z.base64().min(1),
    profileKey,
  }),
  z.object({
    v: z.literal(1),
    kind: z.enum(['group-text', 'group-message']),
    group: z.string().regex(GROUP_ID),
    text: z.string(),
    sentAt,
    profileKey,
  }),
]);

/** A decrypted envelope that is not a message this client can read. */
export class ContentError extends Error {
  override readonly name = 'ContentError';
}

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
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(unpad(plaintext)).toString('utf8'));
  } catch (error) {
    throw new ContentError(`envelope ${envelope.guid}: ${(error as Error).message}`);
  }
  const parsed = contentSchema.safeParse(json);
  if (!parsed.success) throw new ContentError(`envelope ${envelope.guid}: not a Sotto message`);
  const content: Content = parsed.data;
  if (content.profileKey !== undefined && !PROFILE_KEY_BASE64.test(content.profileKey)) {
    throw new ContentError(`envelope ${envelope.guid}: profileKey: must be base64 of 32 bytes`);
  }
  if (content.kind === 'sync' && envelope.sourceAccountId !== ownAccountId) {
    throw new ContentError(`envelope ${envelope.guid}: a sync copy from another account`);
  }
  return content;
}

/** Who the server says sent an envelope, by username, and who this device is. */
export interface Parties {
  /** The username of the envelope's source account, as the directory names it. */
  readonly sender: string;
  readonly ownUsername: string;
}

/**
 * What a received content adds to this device's history: a message to this
 * user from the authenticated sender, a copy of one this account sent
 * elsewhere, or nothing (typing).
 */
export function receivedEntry(
  content: Content,
  guid: string,
  parties: Parties,
): Extract<HistoryEntry, { kind: 'message' }> | undefined {
  if (content.kind === 'typing' || isGroupContent(content)) return undefined;
  const { text, sentAt } = content;
  return content.kind === 'sync'
    ? { kind: 'message', direction: 'out', from: parties.ownUsername, to: content.to, text, sentAt, guid }
    : { kind: 'message', direction: 'in', from: parties.sender, to: parties.ownUsername, text, sentAt, guid };
}
