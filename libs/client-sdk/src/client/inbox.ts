import { status, type ServiceError } from '@grpc/grpc-js';
import { ErrorCode, LibSignalErrorBase } from '@signalapp/libsignal-client';
import type { Envelope } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import type { ConnectResponse } from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import type { AccountFile, Notice, Profile } from '../profile';
import { StreamSender } from '../stream-sender';
import { vaultAttemptReportOf, type VaultAttemptReport } from './backups';
import type { GatewayConnection } from './connection';
import type { ContactBook } from './contacts';
import { decodeContent, receivedEntry, type Content } from './content';
import type { Notices } from './notices';
import type { Sessions } from './sessions';

export interface ReceivedMessage {
  /** The username of the account the server says sent it; never what the message claims. */
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
              const result = await this.accept(message.envelope);
              call.write({ ack: { guids: [message.envelope.guid] } });
              if (result) {
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
   * client does not read, from a session this device does not have), so it is
   * answered, never thrown. A session that fails to decrypt is marked broken:
   * the next send to that account starts a new one.
   */
  private async read(envelope: Envelope): Promise<{ content: Content } | { failure: string }> {
    let plaintext: Uint8Array;
    try {
      plaintext = await this.sessions.decrypt(envelope);
    } catch (error) {
      if (!isReplay(error)) this.contacts.markBroken(envelope.sourceAccountId, envelope.sourceDeviceId);
      return { failure: error instanceof Error ? error.message : String(error) };
    }
    try {
      return { content: decodeContent(plaintext, envelope, this.account.accountId) };
    } catch (error) {
      return { failure: error instanceof Error ? error.message : String(error) };
    }
  }

  /** Remembers which device a contact wrote from, so replies reach every device. */
  private rememberDevice(envelope: Envelope): void {
    // This account's own devices are learned from the server, when a send names them.
    if (envelope.sourceAccountId === this.account.accountId) return;
    this.contacts.rememberDevice(envelope.sourceAccountId, envelope.sourceDeviceId);
  }

  private async acceptEphemeral(envelope: Envelope): Promise<TypingIndicator | undefined> {
    const from = await this.contacts.senderName(envelope.sourceAccountId);
    const read = await this.read(envelope);
    // A typing indicator is not worth a line in history; one that cannot be read is just dropped.
    if (!('content' in read) || read.content.kind !== 'typing') return undefined;
    this.rememberDevice(envelope);
    return { from };
  }

  /** Keeps a queued envelope in history, once: a GUID already handled is dropped unread. */
  private async accept(envelope: Envelope): Promise<ReceivedMessage | undefined> {
    if (this.profile.hasSeen(envelope.guid)) return undefined;
    // Named first, so that whatever the decryption reports (a changed key) names the contact.
    const from = await this.contacts.senderName(envelope.sourceAccountId);
    const read = await this.read(envelope);
    if ('failure' in read) {
      this.notices.record({
        kind: 'undecryptable',
        contact: from,
        at: new Date().toISOString(),
        guid: envelope.guid,
        reason: read.failure,
      });
      this.profile.markSeen(envelope.guid);
      return undefined;
    }
    const { content } = read;
    if (content.kind !== 'sync' && content.kind !== 'typing') this.rememberDevice(envelope);
    const entry = receivedEntry(content, envelope.guid, { sender: from, ownUsername: this.account.username });
    const incoming = entry?.direction === 'in';
    const safetyNumberChanged = incoming && this.sessions.identityChanged(envelope.sourceAccountId);
    if (entry) this.profile.appendHistory(safetyNumberChanged ? { ...entry, safetyNumberChanged } : entry);
    this.profile.markSeen(envelope.guid);
    if (!entry || !incoming) return undefined;
    return { from, text: entry.text, sentAt: entry.sentAt, guid: envelope.guid, safetyNumberChanged };
  }
}
