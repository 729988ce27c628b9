import { status, type ServiceError } from '@grpc/grpc-js';
import type { SenderCertificate } from '@signalapp/libsignal-client';
import type {
  MismatchedDevices,
  OutgoingEnvelope,
} from '@sotto/contracts/generated/sotto/common/v1/envelope';
import { GhostDeviceError, SottoError, UntrustedIdentityError } from '../errors';
import { sendRequest } from '../send-request';
import type { AccountFile, Profile } from '../profile';
import { deriveUnidentifiedAccessKey } from '../unidentified-access';
import type { GatewayConnection } from './connection';
import { deviceList, type ContactBook } from './contacts';
import type { DeviceLists } from './device-lists';
import { encodeContent, type Content } from './content';
import { mismatchedDevices } from './mismatched-devices';
import type { ProfileKey } from './profile-key';
import type { SenderCertificates } from './sender-certificates';
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
    private readonly account: Pick<AccountFile, 'username' | 'accountId' | 'deviceId'>,
    private readonly profileKey: ProfileKey,
    private readonly certificates: SenderCertificates,
    private readonly lists: DeviceLists,
  ) {}

  /**
   * Encrypts the text for every device of the recipient and sends it, then
   * sends a copy to this account's other devices. A copy that cannot be sent
   * does not undo the message, which is already on its way; `synced` says so.
   * `sealed` says whether it went without naming this account to the server.
   */
  async send(
    username: string,
    text: string,
  ): Promise<{ guids: string[]; sentAt: string; synced: boolean; sealed: boolean }> {
    const to = await this.contacts.lookup(username);
    const name = username.toLowerCase();
    const sentAt = new Date().toISOString();
    const { username: from } = this.account;
    // A key the server has not taken yet is not shared: the message goes without it, rather than not at all.
    const profileKey = await this.profileKey.current().then(
      (key) => Buffer.from(key).toString('base64'),
      () => undefined,
    );
    const { guids, sealed } = await this.deliver(
      to,
      { v: 1, from, text, sentAt, ...(profileKey !== undefined && { profileKey }) },
      false,
    );
    this.profile.appendHistory({
      kind: 'message',
      direction: 'out',
      from,
      to: name,
      text,
      sentAt,
      guid: guids[0] ?? '',
      sealed,
    });
    const synced = await this.toOwnDevices({ v: 1, kind: 'sync', from, to: name, text, sentAt });
    return { guids, sentAt, synced, sealed };
  }

  /**
   * Sends the content to this account's other devices, if it has any, as a
   * copy of what this device sent: authenticated, since the server checks a
   * send to the sender's own account against its other devices only when it
   * knows the sender. False when the copy could not be sent.
   */
  async toOwnDevices(content: Content): Promise<boolean> {
    const { accountId, deviceId } = this.account;
    // The account's own list is fetched again now and then, to learn of devices linked since.
    const recheck = Date.now() - this.ownDevicesCheckedAt >= OWN_DEVICES_RECHECK_MS;
    try {
      const own = await this.lists.current(accountId, { refresh: recheck });
      if (recheck) this.ownDevicesCheckedAt = Date.now();
      if (own.devices.some((device) => device.deviceId !== deviceId))
        await this.deliver(accountId, content, false);
      return true;
    } catch {
      return false;
    }
  }

  /** Tells the contact's devices that are online now that this user is typing; nothing is queued or kept. */
  async sendTyping(username: string): Promise<void> {
    // Typing goes authenticated (only online devices get it, nothing is kept), so it carries no profile key.
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
   * date, sessions are mended and the content is sent again.
   *
   * A message to a contact whose profile key this device holds goes sealed
   * (SendSealed, no credential); otherwise, or when the server refuses the
   * access key (the key is then forgotten), it goes authenticated: on the
   * device's Connect stream while one is open (receive), else by Send.
   */
  private async deliver(
    to: string,
    content: Content,
    ephemeral: boolean,
  ): Promise<{ guids: string[]; sealed: boolean }> {
    if (this.sessions.identityChanged(to)) throw new UntrustedIdentityError(this.contacts.knownName(to));
    await this.sessions.renewBroken(to);
    const plaintext = encodeContent(content);
    const toSelf = to === this.account.accountId;
    // A first contact: their bundles give the identity key their device list is checked with.
    if (!toSelf && this.contacts.devicesOf(to).length === 0 && !this.lists.kept(to))
      await this.sessions.establish(to);

    const access = toSelf || ephemeral ? undefined : await this.sealedAccess(to);
    if (access) {
      const guids = await this.sendSealed(to, plaintext, access);
      if (guids) return { guids, sealed: true };
    }
    try {
      const guids = await this.withMending(to, plaintext, undefined, async (envelopes) => {
        const { guids: sent } = await this.connection.send(sendRequest(to, envelopes, { ephemeral }));
        return sent;
      });
      return { guids, sealed: false };
    } catch (error) {
      throw this.connection.explain(error);
    }
  }

  /**
   * What a sealed send to the contact needs: the access key derived from
   * their profile key, and this device's sender certificate. Undefined when
   * either is missing: no profile key from them yet (first contact), or no
   * certificate to be had (no trust root pinned, or the server's does not
   * validate), and then the message goes authenticated rather than not at all.
   */
  private async sealedAccess(
    to: string,
  ): Promise<{ accessKey: Uint8Array; certificate: SenderCertificate } | undefined> {
    const profileKey = this.contacts.profileKeyOf(to);
    if (!profileKey) return undefined;
    try {
      return {
        accessKey: deriveUnidentifiedAccessKey(profileKey),
        certificate: await this.certificates.current(),
      };
    } catch {
      return undefined;
    }
  }

  /** The GUIDs of a sealed send, or undefined when the server refused the access key (which is forgotten). */
  private async sendSealed(
    to: string,
    plaintext: Uint8Array<ArrayBuffer>,
    { accessKey, certificate }: { accessKey: Uint8Array; certificate: SenderCertificate },
  ): Promise<string[] | undefined> {
    try {
      return await this.withMending(to, plaintext, certificate, async (envelopes) => {
        const { guids } = await this.connection.sendSealed({
          ...sendRequest(to, envelopes),
          unidentifiedAccessKey: Buffer.from(accessKey),
        });
        return guids;
      });
    } catch (error) {
      if ((error as ServiceError).code !== status.UNAUTHENTICATED) throw this.connection.explain(error);
      this.contacts.forgetProfileKey(to);
      return undefined;
    }
  }

  /**
   * Sends any content to every device of the account (for this account: its
   * other devices), as messages go: sealed where this device holds the
   * account's profile key, sessions mended on a mismatch. Group updates and
   * sender keys travel this way. The GUIDs of the send.
   */
  async deliverContent(to: string, content: Content): Promise<string[]> {
    return (await this.deliver(to, content, false)).guids;
  }

  /**
   * The devices to encrypt to: those on the account's verified list (for
   * this account, its other devices), each with a session, started now where
   * there is none.
   */
  async targets(to: string): Promise<number[]> {
    const list = await this.lists.current(to);
    const self = to === this.account.accountId ? this.account.deviceId : undefined;
    const listed = list.devices.map((device) => device.deviceId).filter((id) => id !== self);
    const known = this.contacts.devicesOf(to);
    for (const id of listed.filter((listedId) => !known.includes(listedId))) {
      // A listed device the server no longer has is not sent to; the server says so if that is wrong.
      await this.sessions.establish(to, [id]).catch((error: unknown) => {
        if (!(error instanceof SottoError && error.code === status.NOT_FOUND)) throw error;
      });
    }
    const ready = this.contacts.devicesOf(to);
    return deviceList(listed.filter((id) => ready.includes(id)));
  }

  /**
   * Encrypts (sealed under the certificate, if given) to the devices on the
   * account's verified list, and sends. When the server says the device list
   * is out of date, the account's list is fetched again: a device the server
   * wants that is still not on it was not added by the account, and the send
   * is refused (GhostDeviceError) with nothing encrypted to it; otherwise the
   * sessions are mended and the content is sent again. A failure that is not
   * a mismatch is thrown as it came.
   */
  private async withMending(
    to: string,
    plaintext: Uint8Array<ArrayBuffer>,
    sealedUnder: SenderCertificate | undefined,
    send: (envelopes: OutgoingEnvelope[]) => Promise<string[]>,
  ): Promise<string[]> {
    for (let attempt = 1; ; attempt++) {
      const envelopes = await this.sessions.encrypt(to, await this.targets(to), plaintext, sealedUnder);
      try {
        return await send(envelopes);
      } catch (error) {
        const mismatch = attempt < SEND_ATTEMPTS ? mismatchedDevices(error) : undefined;
        if (!mismatch) throw error;
        await this.repair(to, mismatch);
      }
    }
  }

  /**
   * Mends the sessions with the account's devices after the server said a
   * send got them wrong: the account's list is fetched again, and a device
   * the server wants that is still not on it was not added by the account
   * (GhostDeviceError, nothing encrypted to it).
   */
  async repair(to: string, mismatch: MismatchedDevices): Promise<void> {
    const list = await this.lists.current(to, { refresh: true }).catch(async (refused: unknown) => {
      // A list that does not verify under the trusted key is most often one signed by the account's new
      // identity key (it was recovered): the bundles tell that, and the user is asked to compare safety numbers.
      await this.sessions.mend(to, mismatch).catch((error: unknown) => {
        if (error instanceof UntrustedIdentityError) throw error;
      });
      throw refused;
    });
    const unsigned = mismatch.missingDeviceIds.find(
      (id) => !list.devices.some((device) => device.deviceId === id),
    );
    if (unsigned !== undefined) throw new GhostDeviceError(this.contacts.knownName(to), unsigned);
    await this.sessions.mend(to, mismatch);
  }
}
