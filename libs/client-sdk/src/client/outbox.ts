import { UntrustedIdentityError } from '../errors';
import { sendRequest } from '../send-request';
import type { AccountFile, Profile } from '../profile';
import type { GatewayConnection } from './connection';
import type { ContactBook } from './contacts';
import { encodeContent, type Content } from './content';
import { mismatchedDevices } from './mismatched-devices';
import type { Sessions } from './sessions';

/** Tries of one send: the first, and one more after each mending of sessions. */
const SEND_ATTEMPTS = 3;
/** How often a device with no other device known asks whether its account has gained one. */
const OWN_DEVICES_RECHECK_MS = 60_000;

/** What this device sends: messages (kept in history, copied to its other devices) and typing indicators. */
export class Outbox {
  private ownDevicesCheckedAt = 0;

  constructor(
    private readonly connection: GatewayConnection,
    private readonly contacts: ContactBook,
    private readonly sessions: Sessions,
    private readonly profile: Profile,
    private readonly account: Pick<AccountFile, 'username' | 'accountId'>,
  ) {}

  /**
   * Encrypts the text for every device of the recipient and sends it, then
   * sends a copy to this account's other devices. A copy that cannot be sent
   * does not undo the message, which is already on its way; `synced` says so.
   */
  async send(username: string, text: string): Promise<{ guids: string[]; sentAt: string; synced: boolean }> {
    const to = await this.contacts.lookup(username);
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
      await this.contacts.lookup(username),
      { v: 1, kind: 'typing', from: this.account.username },
      true,
    );
  }

  /**
   * Encrypts the content once per device of the account (for this account
   * itself: its other devices) and sends it. Nothing goes to a contact whose
   * identity key changed until the user accepts it. Broken sessions are
   * started afresh first; when the server says the device list is out of
   * date, sessions are mended and the content is sent again. It goes on the
   * device's Connect stream while one is open (receive), else by Send.
   */
  private async deliver(to: string, content: Content, ephemeral: boolean): Promise<string[]> {
    if (this.sessions.identityChanged(to)) throw new UntrustedIdentityError(this.contacts.knownName(to));
    await this.sessions.renewBroken(to);
    const plaintext = encodeContent(content);
    const toSelf = to === this.account.accountId;
    // This account's own device list starts empty; the server names the other devices, if any.
    if (!toSelf && this.contacts.devicesOf(to).length === 0) await this.sessions.establish(to);

    for (let attempt = 1; ; attempt++) {
      const envelopes = await this.sessions.encrypt(to, this.contacts.devicesOf(to), plaintext);
      try {
        const { guids } = await this.connection.send(sendRequest(to, envelopes, { ephemeral }));
        return guids;
      } catch (error) {
        const mismatch = attempt < SEND_ATTEMPTS ? mismatchedDevices(error) : undefined;
        if (!mismatch) throw this.connection.explain(error);
        await this.sessions.mend(to, mismatch);
      }
    }
  }
}
