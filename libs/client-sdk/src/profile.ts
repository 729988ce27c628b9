import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

const SEEN_FILE = 'seen-guids.log';
/** How many handled envelope GUIDs a profile remembers, to drop redeliveries. */
const SEEN_LIMIT = 10_000;

/** What a registered device knows about itself. The secret never leaves the profile except as a credential. */
export interface AccountFile {
  readonly username: string;
  readonly accountId: string;
  readonly deviceId: number;
  readonly deviceSecret: string;
  readonly registrationId: number;
  /** Base64 of the serialized libsignal IdentityKeyPair. */
  readonly identityKeyPair: string;
  /** The next id to give a one-time prekey of either kind. */
  nextPreKeyId: number;
}

export type HistoryEntry =
  | {
      readonly kind: 'message';
      readonly direction: 'in' | 'out';
      /** For a message received: the username of the account the server says sent it. */
      readonly from: string;
      readonly to: string;
      readonly text: string;
      /** ISO 8601, the sender's clock. */
      readonly sentAt: string;
      readonly guid?: string;
      /** Received while the sender's new safety number was not yet accepted. */
      readonly safetyNumberChanged?: true;
      /**
       * Sent, or received, with sealed sender: the server was not told the
       * sender. Absent in entries older than sealed sending, and in copies.
       */
      readonly sealed?: boolean;
      /** A group message: the group's id (`to` is the id too). */
      readonly group?: string;
    }
  | Notice;

/**
 * What happens to a conversation besides its messages; kept in history and
 * shown as it happens. `at` is ISO 8601, this device's clock.
 */
export type Notice =
  /** The contact's identity key is not the accepted one; sending waits for `trust`. */
  | { readonly kind: 'safety-number-changed'; readonly contact: string; readonly at: string }
  /** The user accepted the contact's new identity key. */
  | { readonly kind: 'safety-number-accepted'; readonly contact: string; readonly at: string }
  /** The directory says the username now belongs to another account; messages to it go there. */
  | { readonly kind: 'username-moved'; readonly contact: string; readonly at: string }
  /**
   * The contact's signed device list gained (or lost) a device: their own
   * devices signed the change, so it is them, but the user should know that
   * another device now reads what is sent to them.
   */
  | {
      readonly kind: 'device-added' | 'device-removed';
      readonly contact: string;
      readonly at: string;
      readonly deviceId: number;
    }
  /**
   * A group changed, as an admin signed it or as a member left: `change` in
   * words ("alice added carol", "bob left"); `contact` is who did it.
   */
  | {
      readonly kind: 'group-changed';
      readonly contact: string;
      readonly at: string;
      readonly group: string;
      readonly change: string;
    }
  /** A group update that this device refused (not signed by a current admin, wrong version, ...): nothing changed. */
  | {
      readonly kind: 'group-update-refused';
      readonly contact: string;
      readonly at: string;
      readonly group: string;
      readonly reason: string;
    }
  /** An envelope from the contact that could not be decrypted or read; it was acknowledged and dropped. */
  | {
      readonly kind: 'undecryptable';
      readonly contact: string;
      readonly at: string;
      readonly guid: string;
      readonly reason: string;
    };

/**
 * A device's local state in one directory: keys, sessions, contacts and
 * history. The directory is readable only by its owner and every file is
 * written whole, through a rename, so a crash never leaves half a file.
 */
export class Profile {
  private seenGuids?: Set<string>;

  constructor(readonly dir: string) {}

  static create(dir: string): Profile {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    return new Profile(dir);
  }

  get exists(): boolean {
    return existsSync(join(this.dir, 'account.json'));
  }

  private path(name: string): string {
    return join(this.dir, name);
  }

  read(name: string): Buffer | undefined {
    try {
      return readFileSync(this.path(name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  write(name: string, data: Uint8Array | string): void {
    const target = this.path(name);
    mkdirSync(join(target, '..'), { recursive: true, mode: 0o700 });
    const temporary = `${target}.${process.pid}.tmp`;
    writeFileSync(temporary, data, { mode: 0o600 });
    renameSync(temporary, target);
  }

  remove(name: string): void {
    rmSync(this.path(name), { force: true });
  }

  /** The parsed file, or undefined if there is none; what it holds is for the caller to know. */
  readJson(name: string): unknown {
    const data = this.read(name);
    return data === undefined ? undefined : JSON.parse(data.toString('utf8'));
  }

  writeJson(name: string, value: unknown): void {
    this.write(name, `${JSON.stringify(value, null, 2)}\n`);
  }

  account(): AccountFile {
    const account = this.readJson('account.json') as AccountFile | undefined;
    if (!account) throw new Error(`no account in ${this.dir}; register first`);
    return account;
  }

  /** Whether an envelope with this GUID was already handled here (the last SEEN_LIMIT are remembered). */
  hasSeen(guid: string): boolean {
    return this.seen().has(guid);
  }

  /** Remembers a handled GUID: one appended line, compacted to the newest SEEN_LIMIT now and then. */
  markSeen(guid: string): void {
    const seen = this.seen();
    seen.add(guid);
    appendFileSync(this.path(SEEN_FILE), `${guid}\n`, { mode: 0o600 });
    if (seen.size > 2 * SEEN_LIMIT) {
      const newest = [...seen].slice(-SEEN_LIMIT);
      this.seenGuids = new Set(newest);
      this.write(SEEN_FILE, `${newest.join('\n')}\n`);
    }
  }

  private seen(): Set<string> {
    this.seenGuids ??= new Set(
      (this.read(SEEN_FILE)?.toString('utf8') ?? '').split('\n').filter((line) => line.length > 0),
    );
    return this.seenGuids;
  }

  appendHistory(entry: HistoryEntry): void {
    appendFileSync(this.path('history.jsonl'), `${JSON.stringify(entry)}\n`, { mode: 0o600 });
  }

  history(): HistoryEntry[] {
    const data = this.read('history.jsonl');
    if (!data) return [];
    return data
      .toString('utf8')
      .split('\n')
      .filter((line) => line.length > 0)
      .map((line) => JSON.parse(line) as HistoryEntry);
  }
}
