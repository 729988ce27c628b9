import { status, type ServiceError } from '@grpc/grpc-js';
import { ProtocolAddress } from '@signalapp/libsignal-client';
import type { Envelope } from '@sotto/contracts/generated/client/sotto/common/v1/envelope';
import type {
  BackupVersion,
  ConnectResponse,
  GetBackupStatusResponse,
} from '@sotto/contracts/generated/client/sotto/gateway/v1/gateway';
import type { TransferProgress } from '../backup-transfer';
import { SottoError } from '../errors';
import { unary } from '../grpc';
import { LAST_RESORT_KYBER_ID } from '../keys';
import { pad, unpad } from '../padding';
import { Profile, type AccountFile, type HistoryEntry } from '../profile';
import { parseServerAddress } from '../server';
import { profileSignalStores } from '../signal-stores';
import { Backups, type CreatedBackup } from './backups';
import { GatewayConnection } from './connection';
import { ContactBook } from './contacts';
import { recoverDevice, registerDevice } from './enrolment';
import { mismatchedDevices } from './mismatched-devices';
import { identityKeyPair, refillPreKeys } from './prekeys';
import { safetyNumber } from './safety-number';
import { Sessions } from './sessions';

export interface ReceivedMessage {
  readonly from: string;
  readonly text: string;
  readonly sentAt: string;
  readonly guid: string;
}

export interface TypingIndicator {
  readonly from: string;
}

/**
 * What travels inside the encryption; the server never sees it. A message
 * (no `kind`, as the first version had), a copy of one this account sent from
 * another of its devices, or a typing indicator, which is never kept.
 */
type Content =
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

function pick(content: { from: string; to: string; text: string; sentAt: string }) {
  return { from: content.from, to: content.to, text: content.text, sentAt: content.sentAt };
}

/** Tries of one send: the first, and one more after each mending of sessions. */
const SEND_ATTEMPTS = 3;
/** How often a device with no other device known asks whether its account has gained one. */
const OWN_DEVICES_RECHECK_MS = 60_000;

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
  private readonly contacts: ContactBook;
  private readonly sessions: Sessions;
  private readonly backups: Backups;
  private ownDevicesCheckedAt = 0;

  private constructor(
    readonly profile: Profile,
    readonly server: string,
    private readonly account: AccountFile,
  ) {
    this.connection = new GatewayConnection(server, account);
    this.contacts = new ContactBook(profile, this.connection);
    const stores = profileSignalStores({
      profile,
      identity: identityKeyPair(account),
      registrationId: account.registrationId,
      lastResortKyberId: LAST_RESORT_KYBER_ID,
      onIdentityChange: (changed) =>
        profile.appendHistory({
          kind: 'safety-number-changed',
          contact: this.contacts.usernameOf(changed.name()),
          at: new Date().toISOString(),
        }),
    });
    const local = ProtocolAddress.new(account.accountId, account.deviceId);
    this.sessions = new Sessions(this.connection, this.contacts, stores, local);
    this.backups = new Backups(this.connection, profile, account.accountId);
  }

  get username(): string {
    return this.account.username;
  }

  get accountId(): string {
    return this.account.accountId;
  }

  /** Creates keys in a new profile and registers them; nothing is written unless the server accepts. */
  static async register(options: {
    profileDir: string;
    server: string;
    username: string;
  }): Promise<SottoClient> {
    const { profile, server, account } = await registerDevice(options);
    return new SottoClient(profile, server, account);
  }

  static open(options: { profileDir: string; server: string }): SottoClient {
    const profile = new Profile(options.profileDir);
    if (!profile.exists) {
      throw new SottoError(
        `not registered: ${options.profileDir} holds no account (run \`sotto register <username>\`)`,
      );
    }
    return new SottoClient(profile, parseServerAddress(options.server), profile.account());
  }

  close(): void {
    this.connection.close();
  }

  /** The account id behind a username, remembered once learned. */
  lookup(username: string): Promise<string> {
    return this.contacts.lookup(username);
  }

  /**
   * Encrypts the text for every device of the recipient and sends it, then
   * sends a copy to this account's other devices. A copy that cannot be sent
   * does not undo the message, which is already on its way; `synced` says so.
   */
  async send(username: string, text: string): Promise<{ guids: string[]; sentAt: string; synced: boolean }> {
    const to = await this.lookup(username);
    const name = username.toLowerCase();
    const sentAt = new Date().toISOString();
    const { username: from, accountId } = this.account;
    const guids = await this.deliver(to, { v: 1, from, text, sentAt }, false);
    this.profile.appendHistory({
      kind: 'message',
      direction: 'out',
      from,
      to: name,
      text,
      sentAt,
      guid: guids[0] ?? '',
    });
    // With no other device known, the server is asked again only now and then: each ask is a round trip.
    const ownDevices = this.contacts.devicesOf(accountId);
    let synced = true;
    if (ownDevices.length > 0 || Date.now() - this.ownDevicesCheckedAt >= OWN_DEVICES_RECHECK_MS) {
      synced = await this.deliver(
        accountId,
        { v: 1, kind: 'sync', from, to: name, text, sentAt },
        false,
      ).then(
        () => ((this.ownDevicesCheckedAt = Date.now()), true),
        () => false,
      );
    }
    return { guids, sentAt, synced };
  }

  /** Tells the contact's devices that are online now that this user is typing; nothing is queued or kept. */
  async sendTyping(username: string): Promise<void> {
    await this.deliver(
      await this.lookup(username),
      { v: 1, kind: 'typing', from: this.account.username },
      true,
    );
  }

  /**
   * Encrypts the content once per device of the account (for this account
   * itself: its other devices) and sends it. When the server says the device
   * list is out of date, sessions are mended and the content is sent again.
   */
  private async deliver(to: string, content: Content, ephemeral: boolean): Promise<string[]> {
    const plaintext = pad(Buffer.from(JSON.stringify(content), 'utf8'));
    const toSelf = to === this.account.accountId;
    // This account's own device list starts empty; the server names the other devices, if any.
    if (!toSelf && this.contacts.devicesOf(to).length === 0) await this.sessions.establish(to);

    const { messaging, auth } = this.connection;
    for (let attempt = 1; ; attempt++) {
      const envelopes = await this.sessions.encrypt(to, this.contacts.devicesOf(to), plaintext);
      try {
        const { guids } = await unary(
          messaging.send.bind(messaging),
          { destinationAccountId: to, clientTimestampMs: String(Date.now()), ephemeral, envelopes },
          { metadata: auth },
        );
        return guids;
      } catch (error) {
        const mismatch = attempt < SEND_ATTEMPTS ? mismatchedDevices(error) : undefined;
        if (!mismatch) throw this.connection.explain(error);
        await this.sessions.mend(to, mismatch);
      }
    }
  }

  /**
   * Fetches and acknowledges everything queued, then keeps listening for
   * `waitSeconds`. Each message is decrypted, kept in history and only then
   * acknowledged; a GUID seen before is acknowledged and dropped.
   */
  async receive(
    options: {
      waitSeconds?: number;
      onMessage?: (message: ReceivedMessage) => void;
      onTyping?: (typing: TypingIndicator) => void;
      /** Called once the backlog is delivered: from then on, new messages arrive live. */
      onDrained?: () => void;
      /** Stops listening early. */
      signal?: AbortSignal;
    } = {},
  ): Promise<ReceivedMessage[]> {
    const received: ReceivedMessage[] = [];
    const call = this.connection.messaging.connect(this.connection.auth);
    let timer: NodeJS.Timeout | undefined;
    let work = Promise.resolve();
    const finish = (): void => {
      clearTimeout(timer);
      call.end();
      call.cancel();
    };
    if (options.signal?.aborted) finish();
    options.signal?.addEventListener('abort', finish, { once: true });
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (message: ConnectResponse) => {
        work = work
          .then(async () => {
            if (message.envelope?.ephemeral) {
              // Never queued, so there is nothing to acknowledge.
              const typing = await this.acceptEphemeral(message.envelope);
              if (typing) options.onTyping?.(typing);
            } else if (message.envelope) {
              const result = await this.accept(message.envelope);
              call.write({ ack: { guids: [message.envelope.guid] } });
              if (result) {
                received.push(result);
                options.onMessage?.(result);
              }
            } else if (message.queueEmpty) {
              timer = setTimeout(finish, (options.waitSeconds ?? 0) * 1000);
              options.onDrained?.();
            } else if (message.preKeysLow) {
              await this.refill();
            } else if (message.displaced) {
              finish();
            }
          })
          .catch((error: unknown) => {
            finish();
            reject(error instanceof Error ? error : new Error(String(error)));
          });
      });
      call.on('error', (error: ServiceError) => {
        if (error.code === status.CANCELLED) resolve();
        else reject(this.connection.explain(error));
      });
      call.on('end', () => resolve());
    });
    try {
      await done;
      await work;
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', finish);
    }
    return received;
  }

  private async read(envelope: Envelope): Promise<Content> {
    const plaintext = await this.sessions.decrypt(envelope);
    const content = JSON.parse(Buffer.from(unpad(plaintext)).toString('utf8')) as Content;
    // Only this account's own devices may speak for it.
    if (content.kind === 'sync' && envelope.sourceAccountId !== this.account.accountId) {
      throw new SottoError(`envelope ${envelope.guid}: a sync copy from another account`);
    }
    return content;
  }

  /** A contact (not this account) wrote from this device: replies should reach it. */
  private rememberSender(username: string, envelope: Envelope): void {
    if (envelope.sourceAccountId === this.account.accountId) return;
    this.contacts.rememberSender(username, envelope.sourceAccountId, envelope.sourceDeviceId);
  }

  private async acceptEphemeral(envelope: Envelope): Promise<TypingIndicator | undefined> {
    const content = await this.read(envelope);
    if (content.kind !== 'typing') return undefined;
    this.rememberSender(content.from, envelope);
    return { from: content.from };
  }

  /** Keeps a queued envelope in history, once: a GUID already handled is dropped unread. */
  private async accept(envelope: Envelope): Promise<ReceivedMessage | undefined> {
    if (this.profile.hasSeen(envelope.guid)) return undefined;
    const content = await this.read(envelope);
    let entry: HistoryEntry | undefined;
    if (content.kind === 'sync') {
      entry = { kind: 'message', direction: 'out', ...pick(content), guid: envelope.guid };
    } else if (content.kind !== 'typing') {
      this.rememberSender(content.from, envelope);
      entry = {
        kind: 'message',
        direction: 'in',
        ...pick({ ...content, to: this.account.username }),
        guid: envelope.guid,
      };
    }
    if (entry) this.profile.appendHistory(entry);
    this.profile.markSeen(envelope.guid);
    if (entry?.kind !== 'message' || entry.direction !== 'in') return undefined;
    return { from: entry.from, text: entry.text, sentAt: entry.sentAt, guid: envelope.guid };
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
    options: { password?: string; onProgress?: (progress: TransferProgress) => void } = {},
  ): Promise<CreatedBackup> {
    return this.backups.create(options);
  }

  /** The account's backups (newest first), quota and whether a password vault guards the recovery key. */
  backupStatus(): Promise<GetBackupStatusResponse> {
    return this.backups.status();
  }

  /**
   * A new device: gets the recovery key (as typed, or from the vault with the
   * password), takes the account over with the credential derived from it
   * (the old devices are signed out), then downloads the newest backup,
   * checks it whole and restores history and contacts. The device gets a new
   * identity key, so contacts see a safety-number change; a recovery key is
   * thus never enough to pass for the old device. The profile must be new.
   */
  static async restore(options: {
    profileDir: string;
    server: string;
    username: string;
    recoveryKey?: string;
    password?: string;
    onProgress?: (progress: TransferProgress) => void;
  }): Promise<{ client: SottoClient; historyEntries: number; version: BackupVersion }> {
    const { profile, server, account, recoveryKey } = await recoverDevice(options);
    const client = new SottoClient(profile, server, account);
    try {
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
