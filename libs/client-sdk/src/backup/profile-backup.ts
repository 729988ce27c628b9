import {
  createReadStream,
  createWriteStream,
  existsSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { GROUPS_FILE, type GroupState } from '../group-state';
import { Profile, type AccountFile } from '../profile';
import { BackupError } from './backup-error';
import type { OpenedBackup } from './open-backup';
import type { BackupAccount, BackupContact, BackupContents } from './contents';

/*
 * Reads and writes the profile's own files (account.json, contacts.json,
 * identities/, history.jsonl) with the layout SottoClient and its libsignal
 * stores give them. History is streamed rather than read through
 * Profile.history(), which holds it all in memory.
 */

const HISTORY = 'history.jsonl';
const CONTACTS = 'contacts.json';
const IDENTITIES = 'identities';

/** The part of contacts.json that is account-level; `devices` names this device's sessions. */
interface ContactsFile {
  byName?: Record<string, string>;
}

function listFiles(dir: string): string[] {
  try {
    // Profile.write leaves `<name>.<pid>.tmp` only if it crashed mid-write.
    return readdirSync(dir).filter((name) => !name.endsWith('.tmp'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

function bytesOf(data: Buffer): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function collectContacts(profile: Profile): BackupContact[] {
  const usernames = new Map<string, string[]>();
  for (const [username, accountId] of Object.entries(
    (profile.readJson(CONTACTS) as ContactsFile | undefined)?.byName ?? {},
  )) {
    usernames.set(accountId, [...(usernames.get(accountId) ?? []), username]);
  }
  const identityKeys = new Map<string, Uint8Array>();
  for (const accountId of listFiles(join(profile.dir, IDENTITIES))) {
    const key = profile.read(`${IDENTITIES}/${accountId}`);
    if (key) identityKeys.set(accountId, bytesOf(key));
  }
  const accountIds = [...new Set([...usernames.keys(), ...identityKeys.keys()])].sort();
  return accountIds.map((accountId) => {
    const identityKey = identityKeys.get(accountId);
    return { accountId, usernames: usernames.get(accountId) ?? [], ...(identityKey && { identityKey }) };
  });
}

async function* readHistory(path: string): AsyncGenerator<Buffer> {
  if (!existsSync(path)) return;
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) yield chunk as Buffer;
}

/** The part of groups.json a backup carries: each group's state. */
interface GroupsFile {
  groups?: Record<string, { state: GroupState }>;
}

/** What a backup of this profile holds; the history is read lazily, as the backup is written. */
export function collectBackup(profile: Profile): BackupContents {
  const account = profile.account();
  const groups = Object.values((profile.readJson(GROUPS_FILE) as GroupsFile | undefined)?.groups ?? {});
  return {
    account: { username: account.username, accountId: account.accountId },
    contacts: collectContacts(profile),
    groups: groups.map((group) => group.state),
    history: readHistory(join(profile.dir, HISTORY)),
  };
}

function refuseUnlessEmpty(profile: Profile, account: BackupAccount): void {
  const existing = profile.readJson('account.json') as AccountFile | undefined;
  if (existing && existing.accountId !== account.accountId) {
    throw new BackupError(
      'PROFILE_NOT_EMPTY',
      `${profile.dir} holds the account ${existing.username}; restore into a new profile`,
    );
  }
  let historyBytes = 0;
  try {
    historyBytes = statSync(join(profile.dir, HISTORY)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (historyBytes > 0 || profile.read(CONTACTS) || listFiles(join(profile.dir, IDENTITIES)).length > 0) {
    throw new BackupError(
      'PROFILE_NOT_EMPTY',
      `${profile.dir} already holds history or contacts; restore into a new profile`,
    );
  }
}

/** Passes the history through, counting its entries (lines). */
async function* counted(history: AsyncIterable<Buffer>, count: { entries: number }): AsyncGenerator<Buffer> {
  for await (const lines of history) {
    for (let at = lines.indexOf(0x0a); at !== -1; at = lines.indexOf(0x0a, at + 1)) count.entries++;
    yield lines;
  }
}

export interface RestoreSummary {
  readonly historyEntries: number;
  readonly contacts: number;
}

/**
 * Puts a backup's contacts, their identity keys and the history into a
 * profile that has none (account.json, if already there, must be the same
 * account). The history is staged beside the profile's files and everything
 * lands only once the whole backup was read and its tag checked again, so a
 * failure leaves the profile as it was. account.json is the caller's: it
 * is the new device's own registration.
 */
export async function restoreProfile(profile: Profile, backup: OpenedBackup): Promise<RestoreSummary> {
  refuseUnlessEmpty(profile, backup.account);
  Profile.create(profile.dir);
  const staging = join(profile.dir, `${HISTORY}.${process.pid}.tmp`);
  const count = { entries: 0 };
  try {
    await pipeline(
      counted(backup.history(), count),
      createWriteStream(staging, { flags: 'wx', mode: 0o600 }),
    );
  } catch (error) {
    rmSync(staging, { force: true });
    throw error;
  }
  const byName: Record<string, string> = {};
  for (const contact of backup.contacts) {
    for (const username of contact.usernames) byName[username] = contact.accountId;
    if (contact.identityKey) profile.write(`${IDENTITIES}/${contact.accountId}`, contact.identityKey);
  }
  // No devices: sessions did not travel, so the client sets up new ones on first use.
  profile.writeJson(CONTACTS, { byName, devices: {} });
  // Group states only: this device makes its own sender keys, and members send theirs to it again.
  const groups = Object.fromEntries((backup.groups ?? []).map((state) => [state.id, { state }]));
  profile.writeJson(GROUPS_FILE, { groups, received: {} });
  renameSync(staging, join(profile.dir, HISTORY));
  return { historyEntries: count.entries, contacts: backup.contacts.length };
}
