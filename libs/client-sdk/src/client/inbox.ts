import { status, type ServiceError } from '@grpc/grpc-js';
import { ErrorCode, LibSignalErrorBase, type PublicKey } from '@signalapp/libsignal-client';
import { EnvelopeType, type Envelope } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import type { ConnectResponse } from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import type { AccountFile, Notice, Profile } from '../profile';
import { StreamSender } from '../stream-sender';
import { vaultAttemptReportOf, type VaultAttemptReport } from './backups';
import type { GatewayConnection } from './connection';
import type { ContactBook } from './contacts';
import type { DeviceLists } from './device-lists';
import { decodeContent, isGroupContent, receivedEntry, type Content } from './content';
import type { Groups } from './groups';
import type { Notices } from './notices';
import type { Sessions } from './sessions';

export interface ReceivedMessage {
  /**
   * The username of the account the server says sent it, or, for a sealed
   * message, the account its validated sender certificate names; never what
   * the message claims.
   */
  readonly from: string;
  readonly text: string;
  readonly sentAt: string;
  readonly guid: string;
  /**
   * The sender's identity key changed and the change is not accepted yet: the
   * message may come from whoever holds the account now, not the person
   * whose safety number was compared. Nothing is sent to them until `trust`.
   */
  readonly safetyNumberChanged: boolean;
  /** It came with sealed sender: the server did not learn who sent it. */
  readonly sealed: boolean;
  /** A group message: the group's id. */
  readonly group?: string;
}

export interface TypingIndicator {
  /** The username of the account the server says sent it. */
  readonly from: string;
}

export interface ReceiveOptions {
  waitSeconds?: number;
  onMessage?: (message: ReceivedMessage) => void;
  onTyping?: (typing: TypingIndicator) => void;
  /**
   * Told of what is kept in history besides messages, as it happens: an
   * envelope that could not be decrypted (acknowledged and dropped; the
   * rest of the queue comes on), a changed safety number, a moved username.
   */
  onNotice?: (notice: Notice) => void;
  /** A wrong password was tried on this account's backup vault (see VaultAttemptReport). */
  onVaultAttemptFailed?: (report: VaultAttemptReport) => void;
  /** Called once the backlog is delivered: from then on, new messages arrive live. */
  onDrained?: () => void;
  /** Stops listening early. */
  signal?: AbortSignal;
}

/** Who sent an envelope, as the server authenticated it or a valid sender certificate names it. */
interface Sender {
  readonly accountId: string;
  readonly deviceId: number;
  readonly sealed: boolean;
}

/** The sender of a sealed envelope that could not be opened: nothing about it can be believed. */
const UNKNOWN_SEALED_SENDER = 'an unknown sender';

/** A replay: libsignal already took this message's key. The session itself is fine. */
function isReplay(error: unknown): boolean {
  return error instanceof LibSignalErrorBase && error.code === ErrorCode.DuplicatedMessage;
}

/** What this device receives, over one stream from the gateway: messages, copies and typing indicators. */
export class Inbox {
  constructor(
    private readonly connection: GatewayConnection,
    private readonly contacts: ContactBook,
    private readonly sessions: Sessions,
    private readonly profile: Profile,
    private readonly notices: Notices,
    private readonly account: Pick<AccountFile, 'username' | 'accountId'>,
    /** Uploads more one-time prekeys, when the server says they run low. */
    private readonly refill: () => Promise<void>,
    /** The pinned sealed-sender trust root; throws when none is pinned, and then no sealed envelope is opened. */
    private readonly trustRoot: () => PublicKey,
    private readonly lists: DeviceLists,
    private readonly groups: Groups,
  ) {}

  /**
   * Fetches and acknowledges everything queued, then keeps listening for
   * `waitSeconds`. Each message is decrypted, kept in history and only then
   * acknowledged; a GUID seen before is acknowledged and dropped. An envelope
   * that cannot be decrypted or read is kept in history as such, reported
   * to `onNotice` and acknowledged, so it never holds up the ones behind it.
   */
  async receive(options: ReceiveOptions): Promise<ReceivedMessage[]> {
    const received: ReceivedMessage[] = [];
    const call = this.connection.messaging.connect(this.connection.auth);
    // While the stream is open, this device's sends go on it.
    const sends = new StreamSender(call);
    const stopSending = this.connection.sendOn(sends);
    let timer: NodeJS.Timeout | undefined;
    let work = Promise.resolve();
    let finishing = false;
    const finish = (): void => {
      clearTimeout(timer);
      if (finishing) return;
      finishing = true;
      // New sends go by Send; those on the stream are answered before it closes.
      stopSending();
      void sends.idle().then(() => {
        call.end();
        call.cancel();
      });
    };
    if (options.signal?.aborted) finish();
    options.signal?.addEventListener('abort', finish, { once: true });
    const stopNotices = this.notices.listen((notice) => options.onNotice?.(notice));
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (message: ConnectResponse) => {
        work = work
          .then(async () => {
            if (message.envelope?.ephemeral) {
              // Never queued, so there is nothing to acknowledge.
              const typing = await this.acceptEphemeral(message.envelope);
              if (typing) options.onTyping?.(typing);
            } else if (message.envelope) {
              const results = await this.accept(message.envelope);
              call.write({ ack: { guids: [message.envelope.guid] } });
              for (const result of results) {
                received.push(result);
                options.onMessage?.(result);
              }
            } else if (message.queueEmpty) {
              timer = setTimeout(finish, (options.waitSeconds ?? 0) * 1000);
              options.onDrained?.();
            } else if (message.vaultAttemptFailed) {
              options.onVaultAttemptFailed?.(vaultAttemptReportOf(message.vaultAttemptFailed));
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
      stopSending();
      stopNotices();
      options.signal?.removeEventListener('abort', finish);
    }
    return received;
  }

  /**
   * Decrypts and reads an envelope, or says why not. Whatever goes wrong here
   * is the envelope's doing (garbage, truncated, replayed, of a type this
   * client does not read, from a session this device does not have, sealed
   * under a certificate that does not validate), so it is answered, never
   * thrown. A session that fails to decrypt is marked broken: the next send
   * to that account starts a new one.
   */
  private async read(
    envelope: Envelope,
  ): Promise<
    | { content: Content; sender: Sender }
    | { senderKeyMessage: Uint8Array<ArrayBuffer>; sender: Sender }
    | { failure: string; sender?: Sender }
  > {
    let plaintext: Uint8Array;
    let sender: Sender;
    if (envelope.type === EnvelopeType.ENVELOPE_TYPE_UNIDENTIFIED_SENDER) {
      try {
        const opened = await this.sessions.decryptSealed(envelope, this.trustRoot());
        sender = { accountId: opened.accountId, deviceId: opened.deviceId, sealed: true };
        if ('senderKeyMessage' in opened) return { senderKeyMessage: opened.senderKeyMessage, sender };
        plaintext = opened.plaintext;
      } catch (error) {
        // The sender is unknown unless the certificate validated, so no session is marked broken.
        return { failure: error instanceof Error ? error.message : String(error) };
      }
    } else {
      sender = { accountId: envelope.sourceAccountId, deviceId: envelope.sourceDeviceId, sealed: false };
      try {
        plaintext = await this.sessions.decrypt(envelope);
      } catch (error) {
        if (!isReplay(error)) this.contacts.markBroken(sender.accountId, sender.deviceId);
        return { failure: error instanceof Error ? error.message : String(error), sender };
      }
    }
    try {
      const content = decodeContent(
        plaintext,
        { guid: envelope.guid, sourceAccountId: sender.accountId },
        this.account.accountId,
      );
      return { content, sender };
    } catch (error) {
      return { failure: error instanceof Error ? error.message : String(error), sender };
    }
  }

  /**
   * A device the account's kept list does not name wrote from it: the list
   * is fetched again (a device the account added is told as a notice).
   * Its session is kept, but replies go only to devices on the list.
   */
  private async rememberDevice(sender: Sender): Promise<void> {
    this.contacts.rememberDevice(sender.accountId, sender.deviceId);
    await this.lists.heardFrom(sender.accountId, sender.deviceId);
  }

  private async acceptEphemeral(envelope: Envelope): Promise<TypingIndicator | undefined> {
    const sealed = envelope.type === EnvelopeType.ENVELOPE_TYPE_UNIDENTIFIED_SENDER;
    const named = sealed ? undefined : await this.contacts.senderName(envelope.sourceAccountId);
    const read = await this.read(envelope);
    // A typing indicator is not worth a line in history; one that cannot be read is just dropped.
    if (!('content' in read) || read.content.kind !== 'typing') return undefined;
    const from = named ?? (await this.contacts.senderName(read.sender.accountId));
    await this.rememberDevice(read.sender);
    return { from };
  }

  /**
   * Keeps a queued envelope in history, once: a GUID already handled is
   * dropped unread. What it makes readable is returned: its message, or, for
   * a group's sender key, the group messages that waited for it.
   */
  private async accept(envelope: Envelope): Promise<ReceivedMessage[]> {
    if (this.profile.hasSeen(envelope.guid)) return [];
    const sealed = envelope.type === EnvelopeType.ENVELOPE_TYPE_UNIDENTIFIED_SENDER;
    // Named first, so that whatever the decryption reports (a changed key) names the contact; a
    // sealed envelope names its sender only once opened.
    const from = sealed ? undefined : await this.contacts.senderName(envelope.sourceAccountId);
    const read = await this.read(envelope);
    if ('failure' in read) {
      this.notices.record({
        kind: 'undecryptable',
        contact:
          from ??
          (read.sender ? await this.contacts.senderName(read.sender.accountId) : UNKNOWN_SEALED_SENDER),
        at: new Date().toISOString(),
        guid: envelope.guid,
        reason: read.failure,
      });
      this.profile.markSeen(envelope.guid);
      return [];
    }
    if ('senderKeyMessage' in read) return this.acceptGroupMessage(envelope, read);
    const { content, sender } = read;
    const name = from ?? (await this.contacts.senderName(sender.accountId));
    await this.rememberDevice(sender);
    if (content.kind !== 'sync' && content.kind !== 'typing') {
      if (content.profileKey !== undefined)
        this.contacts.rememberProfileKey(sender.accountId, content.profileKey);
    }
    if (isGroupContent(content)) {
      const results = await this.groups.receive(content, sender, envelope.guid);
      this.profile.markSeen(envelope.guid);
      return results;
    }
    const entry = receivedEntry(content, envelope.guid, { sender: name, ownUsername: this.account.username });
    const incoming = entry?.direction === 'in';
    const safetyNumberChanged = incoming && this.sessions.identityChanged(sender.accountId);
    if (entry) {
      const kept = incoming ? { ...entry, sealed: sender.sealed } : entry;
      this.profile.appendHistory(safetyNumberChanged ? { ...kept, safetyNumberChanged } : kept);
    }
    this.profile.markSeen(envelope.guid);
    if (!entry || !incoming) return [];
    return [
      {
        from: name,
        text: entry.text,
        sentAt: entry.sentAt,
        guid: envelope.guid,
        safetyNumberChanged,
        sealed: sender.sealed,
      },
    ];
  }

  /**
   * A group message under a sender key: read now, or kept by the group until
   * the sender's key arrives. One that can't be read is noted, as any envelope.
   */
  private async acceptGroupMessage(
    envelope: Envelope,
    { senderKeyMessage, sender }: { senderKeyMessage: Uint8Array<ArrayBuffer>; sender: Sender },
  ): Promise<ReceivedMessage[]> {
    let message: ReceivedMessage | undefined;
    try {
      message = await this.groups.open(senderKeyMessage, sender, envelope.guid);
    } catch (error) {
      this.notices.record({
        kind: 'undecryptable',
        contact: await this.contacts.senderName(sender.accountId),
        at: new Date().toISOString(),
        guid: envelope.guid,
        reason: error instanceof Error ? error.message : String(error),
      });
    }
    this.profile.markSeen(envelope.guid);
    return message ? [message] : [];
  }
}
