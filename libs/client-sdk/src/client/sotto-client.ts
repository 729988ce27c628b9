import { status, type ServiceError } from '@grpc/grpc-js';
import {
  CiphertextMessageType,
  Fingerprint,
  KEMPublicKey,
  PreKeyBundle,
  PreKeySignalMessage,
  ProtocolAddress,
  PublicKey,
  SignalMessage,
  processPreKeyBundle,
  signalDecrypt,
  signalDecryptPreKey,
  signalEncrypt,
} from '@signalapp/libsignal-client';
import { EnvelopeType, type Envelope } from '@sotto/contracts/generated/client/sotto/common/v1/envelope';
import type { PreKeyBundle as BundleMessage } from '@sotto/contracts/generated/client/sotto/common/v1/keys';
import type {
  BackupVersion,
  ConnectResponse,
  GetBackupStatusResponse,
} from '@sotto/contracts/generated/client/sotto/gateway/v1/gateway';
import { MismatchedDevices } from '@sotto/contracts/generated/client/sotto/relay/v1/relay';
import type { TransferProgress } from '../backup-transfer';
import { SottoError } from '../errors';
import { unary } from '../grpc';
import { LAST_RESORT_KYBER_ID } from '../keys';
import { pad, unpad } from '../padding';
import { Profile, type AccountFile, type HistoryEntry } from '../profile';
import { parseServerAddress } from '../server';
import {
  ProfileIdentityStore,
  ProfileKyberPreKeyStore,
  ProfilePreKeyStore,
  ProfileSessionStore,
  ProfileSignedPreKeyStore,
} from '../signal-stores';
import { Backups, type CreatedBackup } from './backups';
import { bytes } from './bytes';
import { GatewayConnection } from './connection';
import { recoverDevice, registerDevice } from './enrolment';
import { identityKeyPair, refillPreKeys } from './prekeys';

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

interface Contacts {
  /** username -> account id */
  byName: Record<string, string>;
  /** account id -> the device ids this device has sessions with */
  devices: Record<string, number[]>;
}

const SEND_ATTEMPTS = 3;
/** How often a device with no other device known asks whether its account has gained one. */
const OWN_DEVICES_RECHECK_MS = 60_000;
// CiphertextMessage.type() answers a plain number.
const PREKEY_CIPHERTEXT: number = CiphertextMessageType.PreKey;

function uuidBytes(uuid: string): Uint8Array<ArrayBuffer> {
  return bytes(Buffer.from(uuid.replace(/-/g, ''), 'hex'));
}

/**
 * A Sotto device: its keys, sessions and history live in a profile
 * directory; everything it sends is encrypted with libsignal before it
 * leaves, and everything it receives is decrypted only here.
 */
export class SottoClient {
  private readonly connection: GatewayConnection;
  private readonly backups: Backups;
  private readonly sessions: ProfileSessionStore;
  private readonly identities: ProfileIdentityStore;
  private readonly local: ProtocolAddress;
  private ownDevicesCheckedAt = 0;

  private constructor(
    readonly profile: Profile,
    readonly server: string,
    private readonly account: AccountFile,
  ) {
    this.connection = new GatewayConnection(server, account);
    this.sessions = new ProfileSessionStore(profile);
    this.identities = new ProfileIdentityStore(
      profile,
      identityKeyPair(account),
      account.registrationId,
      (changed) =>
        profile.appendHistory({
          kind: 'safety-number-changed',
          contact: this.usernameOf(changed.name()),
          at: new Date().toISOString(),
        }),
    );
    this.local = ProtocolAddress.new(account.accountId, account.deviceId);
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

  private contacts(): Contacts {
    return this.profile.readJson<Contacts>('contacts.json') ?? { byName: {}, devices: {} };
  }

  private saveContacts(contacts: Contacts): void {
    this.profile.writeJson('contacts.json', contacts);
  }

  private usernameOf(accountId: string): string {
    const entry = Object.entries(this.contacts().byName).find(([, id]) => id === accountId);
    return entry?.[0] ?? accountId;
  }

  /** The account id behind a username, remembered once learned. */
  async lookup(username: string): Promise<string> {
    const name = username.toLowerCase();
    const contacts = this.contacts();
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
    this.saveContacts(contacts);
    return found.accountId;
  }

  /** Starts sessions from freshly fetched bundles: every device of the account, or the given ones. */
  private async establish(accountId: string, deviceIds?: readonly number[]): Promise<void> {
    const targets = deviceIds ?? [0];
    const bundles: BundleMessage[] = [];
    for (const deviceId of targets) {
      const { bundles: fetched } = await this.connection.call(
        this.connection.keys.getPreKeyBundle.bind(this.connection.keys),
        {
          accountId,
          deviceId,
        },
      );
      bundles.push(...fetched);
    }
    const contacts = this.contacts();
    const devices = new Set(deviceIds === undefined ? [] : (contacts.devices[accountId] ?? []));
    for (const bundle of bundles) {
      const signed = bundle.signedPreKey!;
      const kyber = bundle.kyberPreKey!;
      const oneTime = bundle.oneTimePreKey;
      const prekey = PreKeyBundle.new(
        bundle.registrationId,
        bundle.deviceId,
        oneTime ? oneTime.keyId : null,
        oneTime ? PublicKey.deserialize(bytes(oneTime.publicKey)) : null,
        signed.keyId,
        PublicKey.deserialize(bytes(signed.publicKey)),
        bytes(signed.signature),
        PublicKey.deserialize(bytes(bundle.identityKey)),
        kyber.keyId,
        KEMPublicKey.deserialize(bytes(kyber.publicKey)),
        bytes(kyber.signature),
      );
      await processPreKeyBundle(
        prekey,
        ProtocolAddress.new(accountId, bundle.deviceId),
        this.local,
        this.sessions,
        this.identities,
      );
      devices.add(bundle.deviceId);
    }
    contacts.devices[accountId] = [...devices].sort((a, b) => a - b);
    this.saveContacts(contacts);
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
    const { username: from } = this.account;
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
    const ownDevices = this.contacts().devices[this.account.accountId] ?? [];
    let synced = true;
    if (ownDevices.length > 0 || Date.now() - this.ownDevicesCheckedAt >= OWN_DEVICES_RECHECK_MS) {
      synced = await this.deliver(
        this.account.accountId,
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
   * list is out of date, sessions are mended (new devices get one, removed
   * ones are dropped, stale ones rebuilt) and the content is sent again.
   */
  private async deliver(to: string, content: Content, ephemeral: boolean): Promise<string[]> {
    const plaintext = pad(Buffer.from(JSON.stringify(content), 'utf8'));
    const toSelf = to === this.account.accountId;
    // This account's own device list starts empty; the server names the other devices, if any.
    if (!toSelf && !this.contacts().devices[to]?.length) await this.establish(to);

    for (let attempt = 1; ; attempt++) {
      const deviceIds = this.contacts().devices[to] ?? [];
      const envelopes = [];
      for (const deviceId of deviceIds) {
        const address = ProtocolAddress.new(to, deviceId);
        const ciphertext = await signalEncrypt(
          plaintext,
          address,
          this.local,
          this.sessions,
          this.identities,
        );
        const session = await this.sessions.getSession(address);
        envelopes.push({
          destinationDeviceId: deviceId,
          destinationRegistrationId: session?.remoteRegistrationId() ?? 0,
          type:
            ciphertext.type() === PREKEY_CIPHERTEXT
              ? EnvelopeType.ENVELOPE_TYPE_PREKEY_MESSAGE
              : EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT,
          content: Buffer.from(ciphertext.serialize()),
        });
      }
      try {
        const { guids } = await unary(
          this.connection.messaging.send.bind(this.connection.messaging),
          {
            destinationAccountId: to,
            clientTimestampMs: String(Date.now()),
            ephemeral,
            envelopes,
          },
          { metadata: this.connection.auth },
        );
        return guids;
      } catch (error) {
        const trailer = (error as ServiceError).metadata?.get('sotto-mismatched-devices-bin')[0];
        if (
          (error as ServiceError).code !== status.FAILED_PRECONDITION ||
          !Buffer.isBuffer(trailer) ||
          attempt >= SEND_ATTEMPTS
        ) {
          throw this.connection.explain(error);
        }
        await this.mend(to, MismatchedDevices.decode(trailer));
      }
    }
  }

  private async mend(accountId: string, mismatch: MismatchedDevices): Promise<void> {
    const contacts = this.contacts();
    const gone = new Set([...mismatch.extraDeviceIds, ...mismatch.staleDeviceIds]);
    for (const deviceId of gone) this.sessions.deleteSession(ProtocolAddress.new(accountId, deviceId));
    contacts.devices[accountId] = (contacts.devices[accountId] ?? []).filter(
      (id) => !mismatch.extraDeviceIds.includes(id),
    );
    this.saveContacts(contacts);
    const needed = [...mismatch.missingDeviceIds, ...mismatch.staleDeviceIds];
    if (needed.length > 0) await this.establish(accountId, needed);
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

  private async decrypt(envelope: Envelope): Promise<Content> {
    const from = ProtocolAddress.new(envelope.sourceAccountId, envelope.sourceDeviceId);
    let plaintext: Uint8Array;
    if (envelope.type === EnvelopeType.ENVELOPE_TYPE_PREKEY_MESSAGE) {
      plaintext = await signalDecryptPreKey(
        PreKeySignalMessage.deserialize(bytes(envelope.content)),
        from,
        this.local,
        this.sessions,
        this.identities,
        new ProfilePreKeyStore(this.profile),
        new ProfileSignedPreKeyStore(this.profile),
        new ProfileKyberPreKeyStore(this.profile, LAST_RESORT_KYBER_ID),
      );
    } else if (envelope.type === EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT) {
      plaintext = await signalDecrypt(
        SignalMessage.deserialize(bytes(envelope.content)),
        from,
        this.local,
        this.sessions,
        this.identities,
      );
    } else {
      throw new SottoError(`cannot read envelope ${envelope.guid}: unsupported type ${envelope.type}`);
    }
    const content = JSON.parse(Buffer.from(unpad(plaintext)).toString('utf8')) as Content;
    // Only this account's own devices may speak for it.
    if (content.kind === 'sync' && envelope.sourceAccountId !== this.account.accountId) {
      throw new SottoError(`envelope ${envelope.guid}: a sync copy from another account`);
    }
    return content;
  }

  /** Remembers which account and device a contact wrote from, so replies reach every device. */
  private rememberSender(username: string, envelope: Envelope): void {
    if (envelope.sourceAccountId === this.account.accountId) return;
    const contacts = this.contacts();
    const known = contacts.devices[envelope.sourceAccountId] ?? [];
    if (contacts.byName[username] === envelope.sourceAccountId && known.includes(envelope.sourceDeviceId))
      return;
    contacts.byName[username] = envelope.sourceAccountId;
    const devices = new Set(known);
    devices.add(envelope.sourceDeviceId);
    contacts.devices[envelope.sourceAccountId] = [...devices].sort((a, b) => a - b);
    this.saveContacts(contacts);
  }

  private async acceptEphemeral(envelope: Envelope): Promise<TypingIndicator | undefined> {
    const content = await this.decrypt(envelope);
    if (content.kind !== 'typing') return undefined;
    this.rememberSender(content.from, envelope);
    return { from: content.from };
  }

  private async accept(envelope: Envelope): Promise<ReceivedMessage | undefined> {
    if (this.profile.hasSeen(envelope.guid)) return undefined;
    const content = await this.decrypt(envelope);
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
    let theirKey = await this.identities.getIdentity(ProtocolAddress.new(them, 1));
    if (!theirKey) {
      await this.establish(them);
      theirKey = await this.identities.getIdentity(ProtocolAddress.new(them, 1));
    }
    if (!theirKey) throw new SottoError(`no identity key known for ${username}`);
    const mine = identityKeyPair(this.account).publicKey;
    return Fingerprint.new(5200, 2, uuidBytes(this.account.accountId), mine, uuidBytes(them), theirKey)
      .displayableFingerprint()
      .toString();
  }
}

function pick(content: { from: string; to: string; text: string; sentAt: string }) {
  return { from: content.from, to: content.to, text: content.text, sentAt: content.sentAt };
}
