import { ProtocolAddress, type SenderCertificate } from '@signalapp/libsignal-client';
import type { BackupVersion, VaultStatus } from '@sotto/contracts/generated/sotto/common/v1/backup';
import type {
  GetBackupStatusResponse,
  LinkedDevice,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { status } from '@grpc/grpc-js';
import type { BusyWait, TransferProgress } from '../backup-transfer';
import { nextDeviceList } from '../device-list';
import { SottoError } from '../errors';
import { decodeLinkCode, linkFingerprint } from '../link-code';
import { sealProvisioning } from '../provisioning';
import { gatewayCredentials, senderCertificateTrustRoot } from '../gateway-trust';
import { LAST_RESORT_KYBER_ID } from '../keys';
import { Profile, type AccountFile, type HistoryEntry, type Notice } from '../profile';
import { parseServerAddress } from '../server';
import { profileSignalStores } from '../signal-stores';
import { Backups, type CreatedBackup } from './backups';
import { GatewayConnection } from './connection';
import { Groups, type GroupMember, type GroupSummary } from './groups';
import { ContactBook } from './contacts';
import { DeviceLists } from './device-lists';
import { rotateDeviceSecret } from './device-secret';
import { recoverDevice, registerDevice } from './enrolment';
import { Inbox, type ReceivedMessage, type ReceiveOptions } from './inbox';
import { collectProvisioning, linkDevice, type LinkPrompt } from './linking';
import { Notices } from './notices';
import { Outbox } from './outbox';
import { ProfileKey } from './profile-key';
import { identityKeyPair, refillPreKeys } from './prekeys';
import { safetyNumber } from './safety-number';
import { SenderCertificates } from './sender-certificates';
import { Sessions } from './sessions';

export type { ReceivedMessage, ReceiveOptions, TypingIndicator } from './inbox';
export type { VaultAttemptReport } from './backups';
export type { LinkPrompt } from './linking';
export type { GroupMember, GroupSummary } from './groups';

/** What a client trusts besides its own keys: where the gateway's certificate and the sender certificates chain to. */
export interface ClientTrustOptions {
  /** A PEM file of the CA to verify the gateway with, if not SOTTO_CA's or the system's (see gatewayCredentials). */
  readonly ca?: string;
  /**
   * The sealed-sender trust root (base64 of a libsignal PublicKey) to pin, if
   * not SOTTO_SENDER_CERTIFICATE_TRUST_ROOT's or a local platform's (see
   * senderCertificateTrustRoot).
   */
  readonly trustRoot?: string;
}

/**
 * A Sotto device: its keys, sessions and history live in a profile
 * directory; everything it sends is encrypted with libsignal before it
 * leaves, and everything it receives is decrypted only here.
 *
 * The work is done by the parts it holds (a connection to the gateway, the
 * contact book, the libsignal sessions, an outbox and an inbox, backups); this
 * class makes and opens devices and hands each call to the part it belongs to.
 */
export class SottoClient {
  private readonly connection: GatewayConnection;
  private readonly notices: Notices;
  private readonly contacts: ContactBook;
  private readonly sessions: Sessions;
  private readonly outbox: Outbox;
  private readonly inbox: Inbox;
  private readonly backups: Backups;
  private readonly senderCertificates: SenderCertificates;
  private readonly profileKey: ProfileKey;
  private readonly lists: DeviceLists;
  private readonly groups: Groups;

  /**
   * `ca`: the CA to verify the gateway with, if not SOTTO_CA's or the system's (see gatewayCredentials).
   * `trustRoot`: the sealed-sender trust root to pin, if not the one senderCertificateTrustRoot finds.
   */
  private constructor(
    readonly profile: Profile,
    readonly server: string,
    private account: AccountFile,
    { ca, trustRoot }: ClientTrustOptions,
  ) {
    this.connection = new GatewayConnection(server, account, gatewayCredentials(server, { ca }));
    this.notices = new Notices(profile);
    this.contacts = new ContactBook(profile, this.connection, account, this.notices);
    const stores = profileSignalStores({
      profile,
      identity: identityKeyPair(account),
      registrationId: account.registrationId,
      lastResortKyberId: LAST_RESORT_KYBER_ID,
      onIdentityChange: (changed) =>
        this.notices.record({
          kind: 'safety-number-changed',
          contact: this.contacts.knownName(changed.name()),
          at: new Date().toISOString(),
        }),
    });
    this.lists = new DeviceLists(
      profile,
      this.connection,
      account,
      identityKeyPair(account),
      (accountId) => stores.identities.accepted(accountId),
      (accountId) => this.contacts.knownName(accountId),
      this.notices,
    );
    const local = ProtocolAddress.new(account.accountId, account.deviceId);
    this.sessions = new Sessions(this.connection, this.contacts, stores, local, this.lists);
    this.senderCertificates = new SenderCertificates(
      this.connection,
      { ...account, identityKey: identityKeyPair(account).publicKey },
      senderCertificateTrustRoot(server, { trustRoot }),
    );
    this.profileKey = new ProfileKey(profile, this.connection);
    this.outbox = new Outbox(
      this.connection,
      this.contacts,
      this.sessions,
      profile,
      account,
      this.profileKey,
      this.senderCertificates,
      this.lists,
    );
    this.groups = new Groups(
      profile,
      this.connection,
      account,
      identityKeyPair(account),
      stores,
      this.contacts,
      this.outbox,
      this.profileKey,
      this.senderCertificates,
      this.notices,
    );
    this.inbox = new Inbox(
      this.connection,
      this.contacts,
      this.sessions,
      profile,
      this.notices,
      account,
      () => this.refill(),
      () => this.senderCertificates.pinnedRoot(),
      this.lists,
      this.groups,
    );
    this.backups = new Backups(this.connection, profile, account.accountId);
  }

  get username(): string {
    return this.account.username;
  }

  get accountId(): string {
    return this.account.accountId;
  }

  get deviceId(): number {
    return this.account.deviceId;
  }

  /**
   * This device's sealed-sender certificate, validated against the pinned
   * trust root and checked to name this device and its identity key; the
   * same one until shortly before it expires. Throws a SottoError when no
   * trust root is pinned or the server's certificate fails a check.
   */
  senderCertificate(): Promise<SenderCertificate> {
    return this.senderCertificates.current();
  }

  /** Creates keys in a new profile and registers them; nothing is written unless the server accepts. */
  static async register(
    options: {
      profileDir: string;
      server: string;
      username: string;
    } & ClientTrustOptions,
  ): Promise<SottoClient> {
    const { profile, server, account } = await registerDevice(options);
    const client = new SottoClient(profile, server, account, options);
    // The account's first list: this device alone. If it does not reach the server now, the next start publishes it.
    await client.lists.publishAlone(1n).catch(() => undefined);
    // Made now, so that contacts can send sealed from the first reply; if the server does not take its
    // access key yet, the first send tries again.
    await client.profileKey.current().catch(() => undefined);
    return client;
  }

  static open(options: { profileDir: string; server: string } & ClientTrustOptions): SottoClient {
    const profile = new Profile(options.profileDir);
    if (!profile.exists) {
      throw new SottoError(
        `not registered: ${options.profileDir} holds no account (run \`sotto register <username>\`)`,
      );
    }
    return new SottoClient(profile, parseServerAddress(options.server), profile.account(), options);
  }

  close(): void {
    this.connection.close();
  }

  /**
   * Makes a new profile a linked device of an existing account: shows a
   * link code (through `onCode`) for a device of the account to approve
   * (`approveLink`), waits for it, then takes the account's keys, contacts
   * and device list it sends end to end, makes this device's own keys, and
   * joins the account's signed device list. `username` is the account the
   * user means: an approval from another is refused.
   */
  static async link(
    options: {
      profileDir: string;
      server: string;
      username: string;
      /** Shown in device listings. */
      name: string;
      waitSeconds: number;
      onCode: (prompt: LinkPrompt) => void;
    } & ClientTrustOptions,
  ): Promise<SottoClient> {
    const { profile, server, account } = await linkDevice(options);
    return new SottoClient(profile, server, account, options);
  }

  /**
   * Approves a link code shown by a new device: seals this account's keys,
   * contacts, current signed device list and, with `history`, recent history
   * to the key in the code, and hands that to the server, which can't open
   * it. The new device then signs itself onto the list. `fingerprint` is the
   * one the new device shows: the user compares them.
   */
  async approveLink(
    code: string,
    options: { history?: boolean } = {},
  ): Promise<{ deviceId: number; fingerprint: string }> {
    const { token, publicKey } = decodeLinkCode(code);
    await this.lists.current(this.account.accountId, { refresh: true });
    const list = this.lists.keptSigned(this.account.accountId);
    if (list === undefined) throw new SottoError('this account has no signed device list yet');
    const profileKey = await this.profileKey.current().catch(() => undefined);
    const provisioning = collectProvisioning(
      this.profile,
      this.account,
      list,
      profileKey,
      options.history ?? false,
    );
    const { deviceId } = await this.connection.call(
      this.connection.devices.approveLink.bind(this.connection.devices),
      { token, provisioning: sealProvisioning(provisioning, publicKey, token) },
    );
    return { deviceId, fingerprint: linkFingerprint(publicKey) };
  }

  /** The account's devices as the server lists them (id, name, when linked, last seen to the day). */
  async devices(): Promise<{ devices: LinkedDevice[]; current: number }> {
    const { devices } = await this.connection.call(
      this.connection.devices.listDevices.bind(this.connection.devices),
      {},
    );
    return { devices, current: this.account.deviceId };
  }

  /**
   * Unlinks a device of this account: signs the account's list without it
   * and hands that to the server, which revokes the device's credential and
   * closes its streams. This device can't remove itself.
   */
  async removeDevice(deviceId: number): Promise<void> {
    if (deviceId === this.account.deviceId) {
      throw new SottoError(`device ${deviceId} is this device; remove it from another device of the account`);
    }
    const current = await this.lists.current(this.account.accountId, { refresh: true });
    const next = nextDeviceList(current, { remove: deviceId });
    const signed = this.lists.signOwn(next);
    try {
      await this.connection.call(this.connection.devices.removeDevice.bind(this.connection.devices), {
        deviceId,
        deviceList: signed,
      });
    } catch (error) {
      if (error instanceof SottoError && error.code === status.NOT_FOUND)
        throw new SottoError(`the account has no device ${deviceId}`, status.NOT_FOUND);
      throw error;
    }
    this.lists.keepOwn(signed, next.version);
  }

  /** Tells `listener` of each notice recorded from now on (a device a contact added, a changed safety number); the function returned stops it. */
  onNotice(listener: (notice: Notice) => void): () => void {
    return this.notices.listen(listener);
  }

  /** The account id behind a username, remembered once learned. */
  lookup(username: string): Promise<string> {
    return this.contacts.lookup(username);
  }

  /**
   * Encrypts the text for every device of the recipient and sends it, then
   * sends a copy to this account's other devices. A copy that cannot be sent
   * does not undo the message, which is already on its way; `synced` says so.
   * It goes sealed (`sealed`: the server is not told who sent it) once a
   * message from the recipient gave this device their profile key and a
   * sender certificate validates against the pinned trust root; else, or
   * when the server refuses the key, authenticated.
   * Throws UntrustedIdentityError, sending nothing, while the recipient's
   * changed safety number is not accepted (`trust`).
   */
  async send(
    username: string,
    text: string,
  ): Promise<{ guids: string[]; sentAt: string; synced: boolean; sealed: boolean }> {
    await this.lists.ensurePublished();
    return this.outbox.send(username, text);
  }

  /**
   * Replaces this account's profile key, and with it the access key the
   * server checks sealed sends against: contacts who hold the old key are
   * refused and send authenticated until a message from here brings the new one.
   */
  rotateProfileKey(): Promise<void> {
    return this.profileKey.rotate();
  }

  /**
   * Whether anyone, not only contacts holding this account's profile key, may
   * send it sealed messages (the server then cannot tell who they are either).
   * Off by default: strangers' first messages come authenticated.
   */
  acceptSealedFromAnyone(fromAnyone: boolean): Promise<void> {
    return this.profileKey.acceptSealedFromAnyone(fromAnyone);
  }

  /**
   * Tells the contact's devices that are online now that this user is
   * typing; nothing is queued or kept. Refused like `send` while the
   * contact's changed safety number is not accepted.
   */
  sendTyping(username: string): Promise<void> {
    return this.outbox.sendTyping(username);
  }

  /**
   * Fetches and acknowledges everything queued, then keeps listening for
   * `waitSeconds`. Each message is decrypted, kept in history and only then
   * acknowledged; a GUID seen before is acknowledged and dropped. Senders are
   * named by the account the server authenticated, through the directory.
   * An envelope that cannot be decrypted or read is acknowledged and kept in
   * history as a notice (`onNotice` hears of it), and the queue goes on.
   */
  async receive(options: ReceiveOptions = {}): Promise<ReceivedMessage[]> {
    await this.lists.ensurePublished();
    return this.inbox.receive(options);
  }

  /**
   * Makes a group of this user (its admin) and the users named, and sends
   * each of them the state signed with this account's identity key. Returns
   * the group's id. Refused beyond the member limit (SOTTO_MAX_GROUP_MEMBERS).
   */
  async createGroup(title: string, usernames: readonly string[]): Promise<string> {
    await this.lists.ensurePublished();
    return this.groups.create(title, usernames);
  }

  /** An admin adds members: the next version, signed, goes to every member. */
  async addToGroup(id: string, usernames: readonly string[]): Promise<void> {
    await this.lists.ensurePublished();
    return this.groups.add(id, usernames);
  }

  /** An admin removes members; every member's next message uses a new sender key the removed can't read. */
  async removeFromGroup(id: string, usernames: readonly string[]): Promise<void> {
    await this.lists.ensurePublished();
    return this.groups.remove(id, usernames);
  }

  /** This user leaves the group; the members are told. When it was the last admin, who is admin now. */
  async leaveGroup(id: string): Promise<{ newAdmin?: string }> {
    await this.lists.ensurePublished();
    return this.groups.leave(id);
  }

  /** The groups this device knows, with their members; `member` is false for one left or removed from. */
  listGroups(): Promise<GroupSummary[]> {
    return this.groups.list();
  }

  groupMembers(id: string): Promise<GroupMember[]> {
    return this.groups.members(id);
  }

  /**
   * Sends the text to the group: encrypted once with this device's sender
   * key, sealed once for every member device, in one upload (see Groups.send).
   */
  async sendToGroup(
    id: string,
    text: string,
  ): Promise<{ sentAt: string; uploads: number; pairwise: number; why?: string }> {
    await this.lists.ensurePublished();
    return this.groups.send(id, text);
  }

  /** The group's messages and changes, oldest first. */
  groupHistory(id: string): HistoryEntry[] {
    return this.groups.history(id);
  }

  /** Uploads a new batch of one-time keys, keeping the private halves here. */
  refill(): Promise<void> {
    return refillPreKeys(this.profile, this.connection);
  }

  /** The local conversation, oldest first; with a username, only what was exchanged with them. */
  history(username?: string): HistoryEntry[] {
    const name = username?.toLowerCase();
    return this.profile
      .history()
      .filter((entry) =>
        name === undefined
          ? true
          : entry.kind === 'message'
            ? entry.from === name || entry.to === name
            : entry.contact === name,
      );
  }

  /**
   * Backs up history and contacts, encrypted here under keys derived from the
   * recovery key; with a password, the vault also keeps the recovery key
   * sealed under it. Returns the recovery key, which is all a new device needs.
   */
  createBackup(
    options: {
      password?: string;
      onProgress?: (progress: TransferProgress) => void;
      /** The backup store is too busy to take the upload now: it waits and resumes. */
      onBusy?: (wait: BusyWait) => void;
    } = {},
  ): Promise<CreatedBackup> {
    return this.backups.create(options);
  }

  /** The account's backups (newest first), quota and whether a password vault guards the recovery key. */
  backupStatus(): Promise<GetBackupStatusResponse> {
    return this.backups.status();
  }

  /**
   * Clears the count of failed password tries on this account's backup vault
   * (10 tries again, no wait; the reports stop), after a stranger's tries.
   * Allowed once a day; on a destroyed vault it only stops the reports.
   */
  resetVaultAttempts(): Promise<VaultStatus> {
    return this.backups.resetVaultAttempts();
  }

  /**
   * A new device: gets the recovery key (as typed, or from the vault with the
   * password), takes the account over with the credential derived from it
   * (the old devices are signed out), then downloads the newest backup,
   * checks it whole and restores history and contacts. The device gets a new
   * identity key, so contacts see a safety-number change; a recovery key is
   * thus never enough to pass for the old device. The profile must be new.
   */
  static async restore(
    options: {
      profileDir: string;
      server: string;
      username: string;
      recoveryKey?: string;
      password?: string;
      onProgress?: (progress: TransferProgress) => void;
    } & ClientTrustOptions,
  ): Promise<{ client: SottoClient; historyEntries: number; version: BackupVersion }> {
    const { profile, server, account, recoveryKey } = await recoverDevice(options);
    const client = new SottoClient(profile, server, account, options);
    try {
      // A new profile key: contacts holding the old one fall back to authenticated sends until they hear
      // from here. If the server does not take its access key yet, the first send tries again.
      await client.profileKey.rotate().catch(() => undefined);
      // The old list was signed by the old identity key; this device alone is the account now, at a version above the
      // old list's (the time, above any version single steps reach). If it fails, the next start publishes it.
      await client.lists.publishAlone(BigInt(Date.now())).catch(() => undefined);
      const restored = await client.backups.restoreNewest(recoveryKey, options.onProgress);
      return { client, ...restored };
    } catch (error) {
      client.close();
      throw error;
    } finally {
      // Whether or not the backup came in, the account is this device's: account.json makes it a registered one.
      profile.writeJson('account.json', account);
    }
  }

  /**
   * Gives this device a new secret and keeps it in the profile. The old one
   * stops working on every gateway within a second, and streams opened with
   * it are closed: whoever copied it is out. An interrupted rotation is
   * finished by the next call.
   */
  async rotateSecret(): Promise<void> {
    this.account = await rotateDeviceSecret(this.profile, this.connection);
  }

  /**
   * Accepts the contact's changed identity key, after the user compared the
   * new safety number with them; sending works again, through new sessions.
   * `changed` is false when there was nothing to accept. The first key seen
   * for a contact needs no accepting: it is trusted on first use.
   */
  async trust(username: string): Promise<{ changed: boolean; safetyNumber: string }> {
    const accountId = await this.lookup(username);
    const changed = await this.sessions.trust(accountId);
    if (changed) {
      // New sessions: the contact's devices get this device's sender keys again.
      this.groups.forgetDistributedTo(accountId);
      this.notices.record({
        kind: 'safety-number-accepted',
        contact: this.contacts.knownName(accountId),
        at: new Date().toISOString(),
      });
    }
    return { changed, safetyNumber: await this.safetyNumber(username) };
  }

  /** The 60-digit safety number for this device and a contact; the same on both sides. */
  async safetyNumber(username: string): Promise<string> {
    const them = await this.lookup(username);
    const theirKey = await this.sessions.identityOf(them);
    if (!theirKey) throw new SottoError(`no identity key known for ${username}`);
    return safetyNumber(
      { accountId: this.account.accountId, identityKey: identityKeyPair(this.account).publicKey },
      { accountId: them, identityKey: theirKey },
    );
  }
}
