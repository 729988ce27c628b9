import { status, type ServiceError } from '@grpc/grpc-js';
import { SottoError } from '../errors';
import { unary } from '../grpc';
import type { Profile } from '../profile';
import type { GatewayConnection } from './connection';

const CONTACTS_FILE = 'contacts.json';

/** contacts.json, as this device keeps it. */
export interface Contacts {
  /** username -> account id */
  byName: Record<string, string>;
  /** account id -> the device ids this device has sessions with */
  devices: Record<string, number[]>;
}

/** Device ids as contacts.json keeps them: each once, in ascending order. */
export function deviceList(ids: Iterable<number>): number[] {
  return [...new Set(ids)].sort((a, b) => a - b);
}

/**
 * Binds a sender's username to the account and device it wrote from. Answers
 * false when both were known already, so nothing needs saving.
 */
export function bindSender(
  contacts: Contacts,
  username: string,
  accountId: string,
  deviceId: number,
): boolean {
  const known = contacts.devices[accountId] ?? [];
  if (contacts.byName[username] === accountId && known.includes(deviceId)) return false;
  contacts.byName[username] = accountId;
  contacts.devices[accountId] = deviceList([...known, deviceId]);
  return true;
}

/**
 * The people this device knows: usernames bound to account ids (learned from
 * the directory or from who wrote), and the devices of each account this
 * device has sessions with. The file is read afresh on each use and written whole.
 */
export class ContactBook {
  constructor(
    private readonly profile: Profile,
    private readonly connection: GatewayConnection,
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

  /** The username bound to an account id, or the id itself when none is. */
  usernameOf(accountId: string): string {
    const entry = Object.entries(this.read().byName).find(([, id]) => id === accountId);
    return entry?.[0] ?? accountId;
  }

  /** The account id behind a username, asked of the directory once and remembered. */
  async lookup(username: string): Promise<string> {
    const name = username.toLowerCase();
    const contacts = this.read();
    const known = contacts.byName[name];
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
    contacts.byName[name] = found.accountId;
    this.save(contacts);
    return found.accountId;
  }

  /** Remembers which account and device a contact wrote from, so replies reach every device. */
  rememberSender(username: string, accountId: string, deviceId: number): void {
    const contacts = this.read();
    if (bindSender(contacts, username, accountId, deviceId)) this.save(contacts);
  }
}
