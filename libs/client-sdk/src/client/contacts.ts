import { status, type ServiceError } from '@grpc/grpc-js';
import { SottoError } from '../errors';
import { unary } from '../grpc';
import type { AccountFile, Profile } from '../profile';
import type { GatewayConnection } from './connection';
import type { Notices } from './notices';

const CONTACTS_FILE = 'contacts.json';

/** contacts.json, as this device keeps it. */
export interface Contacts {
  /** username -> account id, as the directory last said */
  byName: Record<string, string>;
  /** account id -> the device ids this device has sessions with */
  devices: Record<string, number[]>;
  /** account id -> devices whose session broke: something from them could not be decrypted */
  renew?: Record<string, number[]>;
  /**
   * account id -> the profile key (base64) the account's own message last
   * carried: with it, messages to the account go sealed.
   */
  profileKeys?: Record<string, string>;
}

/** Device ids as contacts.json keeps them: each once, in ascending order. */
export function deviceList(ids: Iterable<number>): number[] {
  return [...new Set(ids)].sort((a, b) => a - b);
}

/** The record without one key. */
function without<T>(record: Record<string, T>, key: string): Record<string, T> {
  return Object.fromEntries(Object.entries(record).filter(([name]) => name !== key));
}

/** The username bound to an account id, if any. */
export function nameOf(contacts: Contacts, accountId: string): string | undefined {
  return Object.entries(contacts.byName).find(([, id]) => id === accountId)?.[0];
}

/**
 * Binds a username to the account the directory says holds it now; a name
 * the account held before is dropped. `moved` means the username was bound
 * to another account until now: the user must be told, since messages to
 * that name now reach someone else.
 */
export function bindUsername(
  contacts: Contacts,
  username: string,
  accountId: string,
): 'unchanged' | 'bound' | 'moved' {
  const before = contacts.byName[username];
  if (before === accountId) return 'unchanged';
  contacts.byName = Object.fromEntries(Object.entries(contacts.byName).filter(([, id]) => id !== accountId));
  contacts.byName[username] = accountId;
  return before === undefined ? 'bound' : 'moved';
}

/** Adds a device to those of an account; false when it was known already. */
export function addDevice(contacts: Contacts, accountId: string, deviceId: number): boolean {
  const known = contacts.devices[accountId] ?? [];
  if (known.includes(deviceId)) return false;
  contacts.devices[accountId] = deviceList([...known, deviceId]);
  return true;
}

/**
 * Keeps the profile key a message from `sender` carried, unless the sender is
 * this account (`ownAccountId`): its own key is not a contact's. False when
 * nothing changed.
 */
export function keepProfileKey(
  contacts: Contacts,
  ownAccountId: string,
  sender: string,
  profileKey: string,
): boolean {
  if (sender === ownAccountId || contacts.profileKeys?.[sender] === profileKey) return false;
  contacts.profileKeys = { ...contacts.profileKeys, [sender]: profileKey };
  return true;
}

/** Drops an account's profile key; false when none was kept. */
export function dropProfileKey(contacts: Contacts, accountId: string): boolean {
  if (contacts.profileKeys?.[accountId] === undefined) return false;
  contacts.profileKeys = without(contacts.profileKeys, accountId);
  return true;
}

/**
 * The people this device knows: usernames bound to account ids, and the
 * devices of each account this device has sessions with. A binding comes
 * only from the directory, asked by username (to send) or by account id (to
 * name whoever the server says sent an envelope), and is kept until the
 * directory says otherwise; never from what a message claims. The file is
 * read afresh on each use and written whole.
 */
export class ContactBook {
  constructor(
    private readonly profile: Profile,
    private readonly connection: GatewayConnection,
    private readonly own: Pick<AccountFile, 'accountId' | 'username'>,
    private readonly notices: Notices,
  ) {}

  read(): Contacts {
    return (this.profile.readJson(CONTACTS_FILE) as Contacts | undefined) ?? { byName: {}, devices: {} };
  }

  save(contacts: Contacts): void {
    this.profile.writeJson(CONTACTS_FILE, contacts);
  }

  /** The devices of the account this device has sessions with; none known is an empty list. */
  devicesOf(accountId: string): number[] {
    return this.read().devices[accountId] ?? [];
  }

  /** The username known for an account id (without asking anyone), or the id itself when none is. */
  knownName(accountId: string): string {
    if (accountId === this.own.accountId) return this.own.username;
    return nameOf(this.read(), accountId) ?? accountId;
  }

  /** The account id behind a username, asked of the directory once and remembered. */
  async lookup(username: string): Promise<string> {
    const name = username.toLowerCase();
    const known = this.read().byName[name];
    if (known) return known;
    let found;
    try {
      found = await unary(
        this.connection.accounts.lookupUsername.bind(this.connection.accounts),
        { username: name },
        { metadata: this.connection.auth },
      );
    } catch (error) {
      if ((error as ServiceError).code === status.NOT_FOUND)
        throw new SottoError(`unknown user ${name}`, status.NOT_FOUND);
      throw this.connection.explain(error);
    }
    this.bind(name, found.accountId);
    return found.accountId;
  }

  /**
   * The username of an account the server says sent something: remembered,
   * or asked of the directory. An account the directory does not know (any
   * more) is named by its id.
   */
  async senderName(accountId: string): Promise<string> {
    if (accountId === this.own.accountId) return this.own.username;
    const known = nameOf(this.read(), accountId);
    if (known) return known;
    let found;
    try {
      found = await unary(
        this.connection.accounts.lookupAccount.bind(this.connection.accounts),
        { accountId },
        { metadata: this.connection.auth },
      );
    } catch (error) {
      // An envelope naming no account the directory knows is still read (or found unreadable), never a reason to stop.
      const code = (error as ServiceError).code;
      if (code === status.NOT_FOUND || code === status.INVALID_ARGUMENT)
        return accountId || 'an unknown sender';
      throw this.connection.explain(error);
    }
    this.bind(found.username, accountId);
    return found.username;
  }

  private bind(username: string, accountId: string): void {
    const contacts = this.read();
    const change = bindUsername(contacts, username, accountId);
    if (change === 'unchanged') return;
    this.save(contacts);
    if (change === 'moved') {
      this.notices.record({ kind: 'username-moved', contact: username, at: new Date().toISOString() });
    }
  }

  /** Remembers a device a contact wrote from, so replies reach every device. */
  rememberDevice(accountId: string, deviceId: number): void {
    const contacts = this.read();
    if (addDevice(contacts, accountId, deviceId)) this.save(contacts);
  }

  /** Forgets the devices of an account, so that the next send starts sessions with all of them afresh. */
  forgetDevices(accountId: string): void {
    const contacts = this.read();
    contacts.devices = without(contacts.devices, accountId);
    if (contacts.renew) contacts.renew = without(contacts.renew, accountId);
    this.save(contacts);
  }

  /** The contact's profile key, if a message from them (authenticated as theirs) carried one. */
  profileKeyOf(accountId: string): Uint8Array | undefined {
    const key = this.read().profileKeys?.[accountId];
    return key === undefined ? undefined : new Uint8Array(Buffer.from(key, 'base64'));
  }

  /**
   * Keeps the profile key a message from the account carried. Only for the
   * account the server or a valid sealed-sender certificate says sent it:
   * never this account's own, never one named in a message body.
   */
  rememberProfileKey(accountId: string, profileKey: string): void {
    const contacts = this.read();
    if (keepProfileKey(contacts, this.own.accountId, accountId, profileKey)) this.save(contacts);
  }

  /** Forgets the contact's profile key (the server refused the access key derived from it). */
  forgetProfileKey(accountId: string): void {
    const contacts = this.read();
    if (dropProfileKey(contacts, accountId)) this.save(contacts);
  }

  /** Notes that the session with a device broke: the next send to the account starts a new one. */
  markBroken(accountId: string, deviceId: number): void {
    const contacts = this.read();
    const broken = contacts.renew?.[accountId] ?? [];
    if (broken.includes(deviceId)) return;
    contacts.renew = { ...contacts.renew, [accountId]: deviceList([...broken, deviceId]) };
    this.save(contacts);
  }

  /** The devices of an account whose sessions broke. */
  brokenDevices(accountId: string): number[] {
    return this.read().renew?.[accountId] ?? [];
  }

  /** The sessions with these devices were started afresh. */
  renewed(accountId: string, deviceIds: readonly number[]): void {
    const contacts = this.read();
    if (!contacts.renew) return;
    const left = (contacts.renew[accountId] ?? []).filter((id) => !deviceIds.includes(id));
    contacts.renew =
      left.length > 0 ? { ...contacts.renew, [accountId]: left } : without(contacts.renew, accountId);
    this.save(contacts);
  }
}
