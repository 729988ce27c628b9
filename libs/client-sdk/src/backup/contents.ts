import { z } from 'zod';
import { groupStateSchema, type GroupState } from '../group-state';
import { BackupError } from './backup-error';

/**
 * Which account this is, and nothing of its keys. A restored device
 * registers an identity key of its own, so contacts see a safety-number
 * change: whoever holds the recovery key can take the account over, but
 * never pass for its old device without its contacts being told.
 */
export interface BackupAccount {
  readonly username: string;
  readonly accountId: string;
}

/** Whom the account talks to and the identity key last seen for them (the trust store). */
export interface BackupContact {
  readonly accountId: string;
  readonly usernames: readonly string[];
  /** Serialized libsignal PublicKey; absent until a session was set up. */
  readonly identityKey?: Uint8Array;
}

/**
 * Everything account-level, none of it device-level: no device secret,
 * registration id, prekeys, sessions or seen GUIDs. Those belong to the old
 * device; the new one registers its own.
 */
export interface BackupContents {
  readonly account: BackupAccount;
  readonly contacts: readonly BackupContact[];
  /**
   * The groups the account is or was in, as this device held them (absent in
   * backups from before groups). Sender keys are device-level and stay: the
   * restored device makes its own, and members send theirs to it again.
   */
  readonly groups?: readonly GroupState[];
  /**
   * The history as the profile keeps it: history.jsonl's bytes, one JSON
   * entry per line, oldest first, in chunks of any size. Carried byte for
   * byte, never parsed, so entries of any kind survive and hundreds of
   * megabytes stream through at the speed of compression.
   */
  readonly history: AsyncIterable<Uint8Array>;
}

const base64 = z.base64().transform((text) => new Uint8Array(Buffer.from(text, 'base64')));

const manifestSchema = z.object({
  account: z.object({
    username: z.string().min(1),
    accountId: z.guid(),
  }),
  contacts: z.array(
    z.object({
      // Also a file name in identities/, so nothing but an account id.
      accountId: z.guid(),
      usernames: z.array(z.string().min(1)),
      identityKey: base64.optional(),
    }),
  ),
  groups: z.array(groupStateSchema).optional(),
});

/** The first record of a backup: the account and its contacts, without the history. */
export type BackupManifest = Omit<BackupContents, 'history'>;

function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

export function encodeManifest(manifest: BackupManifest): string {
  return JSON.stringify({
    account: { username: manifest.account.username, accountId: manifest.account.accountId },
    contacts: manifest.contacts.map((contact) => ({
      accountId: contact.accountId,
      usernames: contact.usernames,
      ...(contact.identityKey && { identityKey: toBase64(contact.identityKey) }),
    })),
    ...(manifest.groups !== undefined && manifest.groups.length > 0 && { groups: manifest.groups }),
  });
}

function parseJson(payload: Buffer, what: string): unknown {
  try {
    return JSON.parse(payload.toString('utf8'));
  } catch {
    throw new BackupError('MALFORMED', `the backup's contents are unreadable: ${what} is not JSON`);
  }
}

export function decodeManifest(payload: Buffer): BackupManifest {
  const parsed = manifestSchema.safeParse(parseJson(payload, 'the account record'));
  if (!parsed.success) {
    throw new BackupError(
      'MALFORMED',
      `the backup's contents are unreadable: ${z.prettifyError(parsed.error).replace(/\n/g, '; ')}`,
    );
  }
  return parsed.data;
}
