import { randomUUID } from 'node:crypto';
import { status, type ServiceError } from '@grpc/grpc-js';
import {
  ContentHint,
  ProtocolAddress,
  SenderKeyDistributionMessage,
  SenderKeyMessage,
  UnidentifiedSenderMessageContent,
  groupDecrypt,
  groupEncrypt,
  processSenderKeyDistributionMessage,
  sealedSenderMultiRecipientEncrypt,
  type IdentityKeyPair,
  type PublicKey,
} from '@signalapp/libsignal-client';
import { SottoError } from '../errors';
import {
  checkGroupUpdate,
  groupChange,
  GROUPS_FILE,
  MAX_GROUP_TITLE,
  maxGroupMembers,
  newGroupId,
  parseGroupId,
  signGroupState,
  type GroupState,
} from '../group-state';
import type { AccountFile, HistoryEntry, Profile } from '../profile';
import type { SignalStores } from '../signal-stores';
import { deriveUnidentifiedAccessKey, UNIDENTIFIED_ACCESS_KEY_BYTES } from '../unidentified-access';
import { bytes } from './bytes';
import type { GatewayConnection } from './connection';
import type { ContactBook } from './contacts';
import { decodeContent, encodeContent, type GroupContent } from './content';
import type { ReceivedMessage } from './inbox';
import { multiRecipientMismatch } from './mismatched-devices';
import type { Notices } from './notices';
import type { Outbox } from './outbox';
import type { ProfileKey } from './profile-key';
import type { SenderCertificates } from './sender-certificates';

const PENDING_FILE = 'group-pending.json';
/** Tries of one group send: the first, and one more after each mending of sessions. */
const SEND_ATTEMPTS = 3;
/** Group messages kept while their sender key has not arrived; the oldest go first beyond this. */
const PENDING_LIMIT = 1000;

/** A group as this device keeps it. */
export interface GroupRecord {
  /** The last state an admin signed that this device accepted, less the members who left since. */
  state: GroupState;
  /** This device's sender key for the group: its distribution id and the devices (`account.device`) given it. */
  own?: { distributionId: string; sentTo: string[] };
}

/** groups.json: the groups, and the distribution ids members' devices sent this device, per group. */
interface GroupsFile {
  groups: Record<string, GroupRecord>;
  /** group id -> `account.device` -> distribution ids received from that device for the group. */
  received: Record<string, Record<string, string[]>>;
}

/** A group message that came before its sender's key: kept, and read once the key arrives. */
interface PendingMessage {
  readonly guid: string;
  readonly accountId: string;
  readonly deviceId: number;
  /** Base64 of the SenderKeyMessage. */
  readonly message: string;
}

export interface GroupMember {
  readonly username: string;
  readonly accountId: string;
  readonly admin: boolean;
}

export interface GroupSummary {
  readonly id: string;
  readonly title: string;
  readonly version: number;
  /** Whether this account is still in the group (not removed, not left). */
  readonly member: boolean;
  readonly members: readonly GroupMember[];
}

const deviceKey = (accountId: string, deviceId: number): string => `${accountId}.${deviceId}`;

function xorKeys(keys: readonly Uint8Array[]): Buffer {
  const combined = Buffer.alloc(UNIDENTIFIED_ACCESS_KEY_BYTES);
  for (const key of keys) for (let i = 0; i < combined.length; i++) combined[i] ^= key[i] ?? 0;
  return combined;
}

/**
 * Groups, held by the clients alone: the state (title, members, admins,
 * version) travels in group updates signed by an admin's identity key over
 * the pairwise sessions, and a member's device takes a change only from a
 * current admin at the next version (checkGroupUpdate). Messages are
 * encrypted once with this device's sender key for the group and sealed once
 * for every device of every member on their verified device lists, in one
 * SendMultiRecipient; nobody outside this device's view of the group is
 * encrypted to. The sender key goes to each member device pairwise before
 * its first message, and is replaced when a member leaves or is removed.
 */
export class Groups {
  private readonly local: ProtocolAddress;

  constructor(
    private readonly profile: Profile,
    private readonly connection: GatewayConnection,
    private readonly account: Pick<AccountFile, 'username' | 'accountId' | 'deviceId'>,
    private readonly identity: IdentityKeyPair,
    private readonly stores: SignalStores,
    private readonly contacts: ContactBook,
    private readonly outbox: Outbox,
    private readonly profileKey: ProfileKey,
    private readonly certificates: SenderCertificates,
    private readonly notices: Notices,
  ) {
    this.local = ProtocolAddress.new(account.accountId, account.deviceId);
  }

  private read(): GroupsFile {
    const file = this.profile.readJson(GROUPS_FILE) as GroupsFile | undefined;
    return { groups: file?.groups ?? {}, received: file?.received ?? {} };
  }

  private save(file: GroupsFile): void {
    this.profile.writeJson(GROUPS_FILE, file);
  }

  private record(id: string): GroupRecord {
    const record = this.read().groups[id];
    if (!record) throw new SottoError(`unknown group ${id}`, status.NOT_FOUND);
    return record;
  }

  private isMember(state: GroupState): boolean {
    return state.members.includes(this.account.accountId);
  }

  /** The group as this device holds it, for one that this account is in and, with `admin`, administers. */
  private joined(idText: string, options: { admin?: boolean } = {}): GroupRecord {
    const record = this.record(parseGroupId(idText));
    if (!this.isMember(record.state))
      throw new SottoError(`you are not a member of group ${record.state.id}`);
    if (options.admin && !record.state.admins.includes(this.account.accountId))
      throw new SottoError(`you are not an admin of group ${record.state.id}`, status.PERMISSION_DENIED);
    return record;
  }

  private async summary(state: GroupState): Promise<GroupSummary> {
    return {
      id: state.id,
      title: state.title,
      version: state.version,
      member: this.isMember(state),
      members: await this.membersOf(state),
    };
  }

  private async membersOf(state: GroupState): Promise<GroupMember[]> {
    const members: GroupMember[] = [];
    for (const accountId of state.members) {
      members.push({
        username: await this.contacts.senderName(accountId),
        accountId,
        admin: state.admins.includes(accountId),
      });
    }
    return members;
  }

  async list(): Promise<GroupSummary[]> {
    const summaries: GroupSummary[] = [];
    for (const record of Object.values(this.read().groups)) summaries.push(await this.summary(record.state));
    return summaries;
  }

  async members(idText: string): Promise<GroupMember[]> {
    return this.membersOf(this.record(parseGroupId(idText)).state);
  }

  /** Account ids of the usernames, each once; this account's own name is refused. */
  private async accountsOf(usernames: readonly string[]): Promise<string[]> {
    const ids: string[] = [];
    for (const username of usernames) {
      const accountId = await this.contacts.lookup(username);
      if (accountId === this.account.accountId)
        throw new SottoError(`${username.toLowerCase()} is you; a group always holds its creator`);
      if (!ids.includes(accountId)) ids.push(accountId);
    }
    return ids;
  }

  private checkSize(count: number): void {
    const max = maxGroupMembers();
    if (count > max)
      throw new SottoError(
        `a group holds at most ${max} members; this would make ${count}`,
        status.RESOURCE_EXHAUSTED,
      );
  }

  /** Makes a group of this account (its admin) and the users, and sends them the signed state. */
  async create(title: string, usernames: readonly string[]): Promise<string> {
    const trimmed = title.trim();
    if (trimmed.length === 0 || trimmed.length > MAX_GROUP_TITLE)
      throw new SottoError(`a group title is 1 to ${MAX_GROUP_TITLE} characters`, status.INVALID_ARGUMENT);
    const others = await this.accountsOf(usernames);
    this.checkSize(others.length + 1);
    const state: GroupState = {
      id: newGroupId(),
      title: trimmed,
      members: [this.account.accountId, ...others],
      admins: [this.account.accountId],
      version: 1,
    };
    await this.publish(undefined, state);
    return state.id;
  }

  async add(idText: string, usernames: readonly string[]): Promise<void> {
    const { state } = this.joined(idText, { admin: true });
    const added = await this.accountsOf(usernames);
    for (const accountId of added) {
      if (state.members.includes(accountId))
        throw new SottoError(
          `${this.contacts.knownName(accountId)} is already a member of group ${state.id}`,
        );
    }
    this.checkSize(state.members.length + added.length);
    await this.publish(state, {
      ...state,
      members: [...state.members, ...added],
      version: state.version + 1,
    });
  }

  async remove(idText: string, usernames: readonly string[]): Promise<void> {
    const { state } = this.joined(idText, { admin: true });
    const removed = await this.accountsOf(usernames);
    for (const accountId of removed) {
      if (!state.members.includes(accountId))
        throw new SottoError(`${this.contacts.knownName(accountId)} is not a member of group ${state.id}`);
    }
    await this.publish(state, {
      ...state,
      members: state.members.filter((id) => !removed.includes(id)),
      admins: state.admins.filter((id) => !removed.includes(id)),
      version: state.version + 1,
    });
  }

  /**
   * Signs the new state, keeps it, and sends it to every member of it and to
   * whoever it removes (so that they know), this account's other devices
   * included. A member it can't reach now is named in the error; the change
   * stands.
   */
  private async publish(before: GroupState | undefined, next: GroupState): Promise<void> {
    const signed = signGroupState(next, this.account.accountId, this.identity.privateKey);
    const file = this.read();
    const record: GroupRecord = file.groups[next.id] ?? { state: signed.state };
    record.state = signed.state;
    file.groups[next.id] = record;
    this.save(file);
    const change = groupChange(before, signed.state);
    if (change.removed.length > 0) this.rotate(next.id);
    await this.recordChange(this.account.accountId, before, signed.state);
    const recipients = [...new Set([...signed.state.members, ...change.removed])];
    await this.toEach(recipients, { v: 1, kind: 'group-update', update: signed });
  }

  /**
   * This account leaves the group: every member is told, and this device
   * forgets its sender key for it. The group's last admin can't leave it
   * without one: its leave is a signed update (the next version, without this
   * account) that makes the first of the other members, in id order, the
   * admin; that member's username is returned.
   */
  async leave(idText: string): Promise<{ newAdmin?: string }> {
    const { state } = this.joined(idText);
    const others = state.members.filter((id) => id !== this.account.accountId);
    if (others.length > 0 && state.admins.every((id) => id === this.account.accountId)) {
      const newAdmin = [...others].sort()[0];
      await this.publish(state, {
        ...state,
        members: others,
        admins: [newAdmin],
        version: state.version + 1,
      });
      return { newAdmin: this.contacts.knownName(newAdmin) };
    }
    this.dropMember(state.id, this.account.accountId);
    this.rotate(state.id);
    this.notices.record({
      kind: 'group-changed',
      contact: this.account.username,
      at: new Date().toISOString(),
      group: state.id,
      change: `${this.account.username} left`,
    });
    await this.toEach(state.members, { v: 1, kind: 'group-leave', group: state.id });
    return {};
  }

  /** Sends content pairwise to each account (this one: its other devices), with this account's profile key. */
  private async toEach(accountIds: readonly string[], content: GroupContent): Promise<void> {
    const profileKey = await this.sharedProfileKey();
    const failed: string[] = [];
    for (const accountId of accountIds) {
      try {
        if (accountId === this.account.accountId && (await this.outbox.targets(accountId)).length === 0)
          continue;
        await this.outbox.deliverContent(accountId, {
          ...content,
          ...(profileKey !== undefined && { profileKey }),
        });
      } catch (error) {
        failed.push(`${this.contacts.knownName(accountId)} (${(error as Error).message})`);
      }
    }
    if (failed.length > 0)
      throw new SottoError(`the group change is made, but not sent to ${failed.join(', ')}`);
  }

  /**
   * This account's profile key (base64), carried by everything groups send
   * pairwise, so that members can include this account in their uploads;
   * undefined while the server has not taken its access key.
   */
  private sharedProfileKey(): Promise<string | undefined> {
    return this.profileKey.current().then(
      (key) => Buffer.from(key).toString('base64'),
      () => undefined,
    );
  }

  private dropMember(id: string, accountId: string): void {
    const file = this.read();
    const record = file.groups[id];
    if (!record) return;
    record.state = {
      ...record.state,
      members: record.state.members.filter((member) => member !== accountId),
      admins: record.state.admins.filter((admin) => admin !== accountId),
    };
    this.save(file);
  }

  /** A new sender key for the group from the next message on: whoever left can't read what follows. */
  private rotate(id: string): void {
    const file = this.read();
    const record = file.groups[id];
    if (!record?.own) return;
    delete record.own;
    this.save(file);
  }

  /** After sessions with the account were started afresh (a new safety number accepted), its devices get the sender keys again. */
  forgetDistributedTo(accountId: string): void {
    const file = this.read();
    for (const record of Object.values(file.groups)) {
      if (record.own)
        record.own.sentTo = record.own.sentTo.filter((device) => !device.startsWith(`${accountId}.`));
    }
    this.save(file);
  }

  /** The history lines of an accepted change, as `actor` made it. */
  private async recordChange(
    actor: string,
    before: GroupState | undefined,
    after: GroupState,
  ): Promise<void> {
    const who = await this.contacts.senderName(actor);
    const at = new Date().toISOString();
    const names = (ids: readonly string[]) => Promise.all(ids.map((id) => this.contacts.senderName(id)));
    const lines: string[] = [];
    if (before === undefined && after.version === 1) {
      lines.push(`${who} created the group “${after.title}”`);
      for (const name of await names(after.members.filter((id) => id !== actor)))
        lines.push(`${who} added ${name}`);
    } else if (before === undefined) {
      lines.push(`${who} added ${this.account.username}`);
    } else {
      const change = groupChange(before, after);
      for (const name of await names(change.added)) lines.push(`${who} added ${name}`);
      for (const name of await names(change.removed.filter((id) => id !== actor)))
        lines.push(`${who} removed ${name}`);
      if (change.removed.includes(actor)) lines.push(`${who} left`);
      if (change.title !== undefined) lines.push(`${who} renamed the group “${change.title}”`);
      const madeAdmin = after.admins.filter(
        (id) => !before.admins.includes(id) && before.members.includes(id),
      );
      for (const name of await names(madeAdmin)) lines.push(`${name} is now an admin`);
    }
    for (const line of lines)
      this.notices.record({ kind: 'group-changed', contact: who, at, group: after.id, change: line });
  }

  /**
   * Sends the text to the group: encrypted once with this device's sender key
   * and sealed once for every device of every other member on their verified
   * device lists, in one SendMultiRecipient authorised by the members'
   * combined access keys. A device that has not had this device's sender key
   * gets it pairwise first. Members whose access key this device lacks (no
   * message from them yet), or every member when the server refuses the
   * combined key or no sender certificate is to be had, get the text pairwise
   * instead, sealed where possible. This account's other devices get a copy
   * as a one-to-one message's copy goes, authenticated: a sealed upload
   * names no sender, so the server would count this device among the
   * account's devices the upload leaves out, and refuse it.
   */
  async send(
    idText: string,
    text: string,
  ): Promise<{ sentAt: string; uploads: number; pairwise: number; why?: string }> {
    const { state } = this.joined(idText);
    const sentAt = new Date().toISOString();
    const recipients = state.members.filter((id) => id !== this.account.accountId);
    const distributionId = this.ownDistribution(state.id);
    // Made before the message is encrypted: a device given it can read this message and those after.
    const distribution = await SenderKeyDistributionMessage.create(
      this.local,
      distributionId,
      this.stores.senderKeys,
    );
    const ciphertext = await groupEncrypt(
      this.local,
      distributionId,
      this.stores.senderKeys,
      encodeContent({ v: 1, kind: 'group-message', group: state.id, text, sentAt }),
    );
    let why: string | undefined;
    const certificate = await this.certificates.current().catch((error: unknown) => {
      why = `no sender certificate (${(error as Error).message})`;
      return undefined;
    });
    let pairwise: string[] = recipients;
    let uploads = 0;
    if (certificate) {
      const usmc = UnidentifiedSenderMessageContent.new(
        ciphertext,
        certificate,
        ContentHint.Resendable,
        bytes(Buffer.from(state.id, 'hex')),
      );
      for (let attempt = 1; ; attempt++) {
        const { addresses, accessKeys, without } = await this.prepare(state.id, recipients, distribution);
        pairwise = without;
        if (without.length > 0) why = 'no message from them yet, so no access key';
        if (addresses.length === 0) break;
        const message = await sealedSenderMultiRecipientEncrypt(
          usmc,
          addresses,
          this.stores.identities,
          this.stores.sessions,
        );
        try {
          await this.connection.sendMultiRecipient({
            message: Buffer.from(message),
            clientTimestampMs: String(Date.now()),
            ephemeral: false,
            combinedAccessKey: xorKeys(accessKeys),
          });
          uploads = 1;
          break;
        } catch (error) {
          if ((error as ServiceError).code === status.UNAUTHENTICATED) {
            // Some member's key is out of date, and the server can't say whose: everyone gets it pairwise.
            pairwise = recipients;
            why = 'the server refused the combined access key';
            break;
          }
          const mismatch = attempt < SEND_ATTEMPTS ? multiRecipientMismatch(error) : undefined;
          if (!mismatch) throw this.connection.explain(error);
          for (const { accountId, devices } of mismatch.recipients) {
            if (!recipients.includes(accountId) || !devices) continue;
            await this.outbox.repair(accountId, devices);
            this.forgetDistributedTo(accountId);
          }
        }
      }
    }
    const profileKey = pairwise.length > 0 ? await this.sharedProfileKey() : undefined;
    for (const accountId of pairwise) {
      await this.outbox.deliverContent(accountId, {
        v: 1,
        kind: 'group-text',
        group: state.id,
        text,
        sentAt,
        ...(profileKey !== undefined && { profileKey }),
      });
    }
    await this.outbox.toOwnDevices({ v: 1, kind: 'group-text', group: state.id, text, sentAt });
    this.profile.appendHistory({
      kind: 'message',
      direction: 'out',
      from: this.account.username,
      to: state.id,
      group: state.id,
      text,
      sentAt,
      sealed: true,
    });
    return { sentAt, uploads, pairwise: pairwise.length, ...(pairwise.length > 0 && { why }) };
  }

  /** This device's distribution id for the group, made (and kept) when there is none. */
  private ownDistribution(id: string): string {
    const file = this.read();
    const record = file.groups[id];
    if (!record) throw new SottoError(`unknown group ${id}`, status.NOT_FOUND);
    if (!record.own) {
      record.own = { distributionId: randomUUID(), sentTo: [] };
      this.save(file);
    }
    return record.own.distributionId;
  }

  /**
   * The devices to seal the group message to, and the access keys that
   * authorise it: every device on each member's verified list, after giving
   * those that lack it this device's sender key. Members with no access key
   * known here are left `without`.
   */
  private async prepare(
    id: string,
    recipients: readonly string[],
    distribution: SenderKeyDistributionMessage,
  ): Promise<{ addresses: ProtocolAddress[]; accessKeys: Uint8Array[]; without: string[] }> {
    const addresses: ProtocolAddress[] = [];
    const accessKeys: Uint8Array[] = [];
    const without: string[] = [];
    for (const accountId of recipients) {
      const devices = await this.outbox.targets(accountId);
      if (devices.length === 0) continue;
      const profileKey = this.contacts.profileKeyOf(accountId);
      if (!profileKey) {
        without.push(accountId);
        continue;
      }
      const sentTo = this.read().groups[id]?.own?.sentTo ?? [];
      if (devices.some((deviceId) => !sentTo.includes(deviceKey(accountId, deviceId)))) {
        await this.toEach([accountId], {
          v: 1,
          kind: 'sender-key',
          group: id,
          distribution: Buffer.from(distribution.serialize()).toString('base64'),
        });
        const file = this.read();
        const own = file.groups[id]?.own;
        if (own) {
          own.sentTo = [
            ...new Set([...own.sentTo, ...devices.map((deviceId) => deviceKey(accountId, deviceId))]),
          ];
          this.save(file);
        }
      }
      accessKeys.push(deriveUnidentifiedAccessKey(profileKey));
      for (const deviceId of devices) addresses.push(ProtocolAddress.new(accountId, deviceId));
    }
    return { addresses, accessKeys, without };
  }

  /**
   * Takes a group content that came pairwise from `sender` (authenticated by
   * the server or a sealed-sender certificate): an update, a leave, a sender
   * key, or a message sent pairwise. Messages it makes readable are returned.
   */
  async receive(
    content: GroupContent,
    sender: { accountId: string; deviceId: number; sealed: boolean },
    guid: string,
  ): Promise<ReceivedMessage[]> {
    switch (content.kind) {
      case 'group-update': {
        await this.takeUpdate(content.update, sender.accountId);
        return this.retryPending();
      }
      case 'group-leave': {
        const record = this.read().groups[content.group];
        if (!record || !record.state.members.includes(sender.accountId)) return [];
        this.dropMember(content.group, sender.accountId);
        this.rotate(content.group);
        const who = await this.contacts.senderName(sender.accountId);
        this.notices.record({
          kind: 'group-changed',
          contact: who,
          at: new Date().toISOString(),
          group: content.group,
          change: `${who} left`,
        });
        return [];
      }
      case 'sender-key': {
        const distribution = SenderKeyDistributionMessage.deserialize(
          bytes(Buffer.from(content.distribution, 'base64')),
        );
        const from = ProtocolAddress.new(sender.accountId, sender.deviceId);
        await processSenderKeyDistributionMessage(from, distribution, this.stores.senderKeys);
        const file = this.read();
        const group = (file.received[content.group] ??= {});
        const device = deviceKey(sender.accountId, sender.deviceId);
        group[device] = [...new Set([...(group[device] ?? []), distribution.distributionId()])];
        this.save(file);
        return this.retryPending();
      }
      case 'group-text': {
        const message = await this.accepted(content, sender, guid);
        return message ? [message] : [];
      }
      case 'group-message':
        // Only ever under a sender key (open), never pairwise.
        return [];
    }
  }

  private async takeUpdate(update: Extract<GroupContent, { kind: 'group-update' }>['update'], from: string) {
    const id = update.state.id;
    const before = this.read().groups[id]?.state;
    const result = checkGroupUpdate(before, update, {
      ownAccountId: this.account.accountId,
      keyOf: (accountId): PublicKey | null =>
        accountId === this.account.accountId
          ? this.identity.publicKey
          : this.stores.identities.accepted(accountId),
      max: maxGroupMembers(),
    });
    if ('refused' in result) {
      this.notices.record({
        kind: 'group-update-refused',
        contact: await this.contacts.senderName(from),
        at: new Date().toISOString(),
        group: id,
        reason: result.refused,
      });
      return;
    }
    const file = this.read();
    const record = file.groups[id] ?? { state: result.accepted };
    record.state = result.accepted;
    file.groups[id] = record;
    this.save(file);
    const wasMember = before !== undefined && this.isMember(before);
    if (wasMember && groupChange(before, result.accepted).removed.length > 0) this.rotate(id);
    await this.recordChange(update.signer, wasMember ? before : undefined, result.accepted);
    if (!this.isMember(result.accepted)) this.rotate(id);
  }

  /**
   * A group message sealed to this device with the sender's sender key: read
   * when this device has the key and the sender is in the group as this
   * device holds it; kept for later when the key has not arrived yet.
   * Undefined when it is kept; a failure is thrown for the inbox to record.
   */
  async open(
    message: Uint8Array<ArrayBuffer>,
    sender: { accountId: string; deviceId: number },
    guid: string,
  ): Promise<ReceivedMessage | undefined> {
    const parsed = SenderKeyMessage.deserialize(message);
    const id = this.groupOf(sender, parsed.distributionId());
    if (id === undefined) {
      this.keepPending({ guid, ...sender, message: Buffer.from(message).toString('base64') });
      return undefined;
    }
    const plaintext = await groupDecrypt(
      ProtocolAddress.new(sender.accountId, sender.deviceId),
      this.stores.senderKeys,
      message,
    );
    const content = decodeContent(
      plaintext,
      { guid, sourceAccountId: sender.accountId },
      this.account.accountId,
    );
    if (content.kind !== 'group-message' || content.group !== id)
      throw new SottoError(`envelope ${guid}: not a message of the group its sender key is for`);
    const accepted = await this.accepted(content, { ...sender, sealed: true }, guid);
    if (!accepted) throw new SottoError(`envelope ${guid}: from someone who is not in group ${id}`);
    return accepted;
  }

  /** The group whose sender key from that device has this distribution id. */
  private groupOf(
    sender: { accountId: string; deviceId: number },
    distributionId: string,
  ): string | undefined {
    const device = deviceKey(sender.accountId, sender.deviceId);
    const { groups, received } = this.read();
    return Object.keys(received).find(
      (id) => groups[id] !== undefined && (received[id]?.[device] ?? []).includes(distributionId),
    );
  }

  private keepPending(pending: PendingMessage): void {
    const kept = (this.profile.readJson(PENDING_FILE) as PendingMessage[] | undefined) ?? [];
    this.profile.writeJson(PENDING_FILE, [...kept, pending].slice(-PENDING_LIMIT));
  }

  /** Reads the kept group messages whose sender key (and group) have arrived since. */
  private async retryPending(): Promise<ReceivedMessage[]> {
    const kept = (this.profile.readJson(PENDING_FILE) as PendingMessage[] | undefined) ?? [];
    if (kept.length === 0) return [];
    const still: PendingMessage[] = [];
    const read: ReceivedMessage[] = [];
    for (const pending of kept) {
      const sender = { accountId: pending.accountId, deviceId: pending.deviceId };
      const message = bytes(Buffer.from(pending.message, 'base64'));
      if (this.groupOf(sender, SenderKeyMessage.deserialize(message).distributionId()) === undefined) {
        still.push(pending);
        continue;
      }
      try {
        const opened = await this.open(message, sender, pending.guid);
        if (opened) read.push(opened);
      } catch (error) {
        this.notices.record({
          kind: 'undecryptable',
          contact: await this.contacts.senderName(pending.accountId),
          at: new Date().toISOString(),
          guid: pending.guid,
          reason: (error as Error).message,
        });
      }
    }
    this.profile.writeJson(PENDING_FILE, still);
    return read;
  }

  /** A group message from a member, kept in history; undefined when the sender is not in the group as held here. */
  private async accepted(
    content: Extract<GroupContent, { kind: 'group-text' | 'group-message' }>,
    sender: { accountId: string; sealed: boolean },
    guid: string,
  ): Promise<ReceivedMessage | undefined> {
    const record = this.read().groups[content.group];
    if (!record || !this.isMember(record.state) || !record.state.members.includes(sender.accountId))
      return undefined;
    const from = await this.contacts.senderName(sender.accountId);
    const own = sender.accountId === this.account.accountId;
    const entry: HistoryEntry = {
      kind: 'message',
      direction: own ? 'out' : 'in',
      from,
      to: content.group,
      group: content.group,
      text: content.text,
      sentAt: content.sentAt,
      guid,
      sealed: sender.sealed,
    };
    this.profile.appendHistory(entry);
    if (own) return undefined;
    return {
      from,
      text: content.text,
      sentAt: content.sentAt,
      guid,
      safetyNumberChanged: false,
      sealed: sender.sealed,
      group: content.group,
    };
  }

  /** The group's history here: its messages and its changes, oldest first. */
  history(idText: string): HistoryEntry[] {
    const id = this.record(parseGroupId(idText)).state.id;
    return this.profile.history().filter((entry) => 'group' in entry && entry.group === id);
  }
}
