import { status, type ServiceError } from '@grpc/grpc-js';
import type { Envelope } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import type { ConnectResponse } from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import type { AccountFile, Profile } from '../profile';
import { vaultAttemptReportOf, type VaultAttemptReport } from './backups';
import type { GatewayConnection } from './connection';
import type { ContactBook } from './contacts';
import { decodeContent, receivedEntry, type Content } from './content';
import type { Sessions } from './sessions';

export interface ReceivedMessage {
  readonly from: string;
  readonly text: string;
  readonly sentAt: string;
  readonly guid: string;
}

export interface TypingIndicator {
  readonly from: string;
}

export interface ReceiveOptions {
  waitSeconds?: number;
  onMessage?: (message: ReceivedMessage) => void;
  onTyping?: (typing: TypingIndicator) => void;
  /** A wrong password was tried on this account's backup vault (see VaultAttemptReport). */
  onVaultAttemptFailed?: (report: VaultAttemptReport) => void;
  /** Called once the backlog is delivered: from then on, new messages arrive live. */
  onDrained?: () => void;
  /** Stops listening early. */
  signal?: AbortSignal;
}

/** What this device receives, over one stream from the gateway: messages, copies and typing indicators. */
export class Inbox {
  constructor(
    private readonly connection: GatewayConnection,
    private readonly contacts: ContactBook,
    private readonly sessions: Sessions,
    private readonly profile: Profile,
    private readonly account: Pick<AccountFile, 'username' | 'accountId'>,
    /** Uploads more one-time prekeys, when the server says they run low. */
    private readonly refill: () => Promise<void>,
  ) {}

  /**
   * Fetches and acknowledges everything queued, then keeps listening for
   * `waitSeconds`. Each message is decrypted, kept in history and only then
   * acknowledged; a GUID seen before is acknowledged and dropped.
   */
  async receive(options: ReceiveOptions): Promise<ReceivedMessage[]> {
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
      options.signal?.removeEventListener('abort', finish);
    }
    return received;
  }

  private async read(envelope: Envelope): Promise<Content> {
    return decodeContent(await this.sessions.decrypt(envelope), envelope, this.account.accountId);
  }

  /** Remembers which account and device a contact wrote from, so replies reach every device. */
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
    const entry = receivedEntry(content, envelope.guid, this.account.username);
    if (content.kind !== 'sync' && content.kind !== 'typing') this.rememberSender(content.from, envelope);
    if (entry) this.profile.appendHistory(entry);
    this.profile.markSeen(envelope.guid);
    if (entry?.kind !== 'message' || entry.direction !== 'in') return undefined;
    return { from: entry.from, text: entry.text, sentAt: entry.sentAt, guid: envelope.guid };
  }
}
