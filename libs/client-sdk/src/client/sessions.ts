import {
  CiphertextMessageType,
  ContentHint,
  Direction,
  ErrorCode,
  KEMPublicKey,
  LibSignalErrorBase,
  PreKeyBundle,
  PreKeySignalMessage,
  ProtocolAddress,
  type SenderCertificate,
  PublicKey,
  SignalMessage,
  UnidentifiedSenderMessageContent,
  processPreKeyBundle,
  sealedSenderDecryptMessage,
  sealedSenderDecryptToUsmc,
  sealedSenderEncrypt,
  signalDecrypt,
  signalDecryptPreKey,
  signalEncrypt,
} from '@signalapp/libsignal-client';
import { status } from '@grpc/grpc-js';
import {
  EnvelopeType,
  type Envelope,
  type MismatchedDevices,
  type OutgoingEnvelope,
} from '@sotto/contracts/generated/sotto/common/v1/envelope';
import type { PreKeyBundle as BundleMessage } from '@sotto/contracts/generated/sotto/common/v1/keys';
import { GhostDeviceError, SottoError, UntrustedIdentityError } from '../errors';
import type { SignalStores } from '../signal-stores';
import { bytes } from './bytes';
import type { GatewayConnection } from './connection';
import { deviceList, type ContactBook } from './contacts';
import type { DeviceLists } from './device-lists';
import { sessionRepair } from './mismatched-devices';

// CiphertextMessage.type() answers a plain number.
const PREKEY_CIPHERTEXT: number = CiphertextMessageType.PreKey;
const SENDER_KEY_CIPHERTEXT: number = CiphertextMessageType.SenderKey;

/** A sealed envelope opened: pairwise plaintext, or a group's sender-key message still to decrypt with the group's key. */
export type OpenedSealed =
  | { readonly plaintext: Uint8Array; readonly accountId: string; readonly deviceId: number }
  | {
      readonly senderKeyMessage: Uint8Array<ArrayBuffer>;
      readonly accountId: string;
      readonly deviceId: number;
    };

/** A prekey bundle as the gateway answers it, as libsignal takes it; a bundle without its signed or Kyber prekey is refused. */
export function preKeyBundle(bundle: BundleMessage): PreKeyBundle {
  const { signedPreKey: signed, kyberPreKey: kyber, oneTimePreKey: oneTime } = bundle;
  // Every bundle the server hands out has both; without one no session can be set up.
  if (!signed || !kyber) {
    throw new SottoError(
      `the server sent a prekey bundle for device ${bundle.deviceId} of ${bundle.accountId} without its ${signed ? 'Kyber' : 'signed'} prekey`,
    );
  }
  return PreKeyBundle.new(
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
}

/**
 * This device's libsignal sessions with every device of every contact (and
 * of its own account): set up from prekey bundles fetched from the server,
 * mended when the server says a device list is out of date, and used to
 * encrypt and decrypt. Which devices have sessions is kept in the contact book.
 */
export class Sessions {
  constructor(
    private readonly connection: GatewayConnection,
    private readonly contacts: ContactBook,
    private readonly stores: SignalStores,
    /** This device's own address. */
    private readonly local: ProtocolAddress,
    private readonly lists: DeviceLists,
  ) {}

  /**
   * Starts sessions from freshly fetched bundles: every device of the
   * account, or the given ones. Only with devices on the account's verified
   * list (checked once the bundles' identity key is): a bundle of any other
   * device is dropped unused, and one whose registration id is not the
   * listed one is refused, as the server answering for a device it swapped.
   */
  async establish(accountId: string, deviceIds?: readonly number[]): Promise<void> {
    const targets = deviceIds ?? [0];
    const bundles: BundleMessage[] = [];
    for (const deviceId of targets) {
      const { bundles: fetched } = await this.connection.call(
        this.connection.keys.getPreKeyBundle.bind(this.connection.keys),
        { accountId, deviceId },
      );
      bundles.push(...fetched);
    }
    const parsed = bundles.map((bundle) => ({ bundle, parsed: preKeyBundle(bundle) }));
    for (const { bundle, parsed: one } of parsed)
      await this.checkIdentity(ProtocolAddress.new(accountId, bundle.deviceId), one.identityKey());
    const listed = (await this.lists.current(accountId)).devices;
    const contacts = this.contacts.read();
    // Fetching every device replaces the list; fetching some adds to it.
    const devices = deviceIds === undefined ? [] : [...(contacts.devices[accountId] ?? [])];
    for (const { bundle, parsed: one } of parsed) {
      const onList = listed.find((device) => device.deviceId === bundle.deviceId);
      if (!onList || (accountId === this.local.name() && bundle.deviceId === this.local.deviceId())) continue;
      if (onList.registrationId !== bundle.registrationId) {
        throw new GhostDeviceError(this.contacts.knownName(accountId), bundle.deviceId);
      }
      const address = ProtocolAddress.new(accountId, bundle.deviceId);
      await processPreKeyBundle(one, address, this.local, this.stores.sessions, this.stores.identities);
      devices.push(bundle.deviceId);
    }
    contacts.devices[accountId] = deviceList(devices);
    this.contacts.save(contacts);
  }

  /**
   * Records the identity key a bundle carries (a first one is trusted) and
   * refuses to go on with one that is not the accepted key: the server, or
   * whoever took the account over, may be answering for the contact.
   */
  private async checkIdentity(address: ProtocolAddress, key: PublicKey): Promise<void> {
    const { identities } = this.stores;
    await identities.saveIdentity(address, key);
    if (!(await identities.isTrustedIdentity(address, key, Direction.Sending))) {
      throw new UntrustedIdentityError(this.contacts.knownName(address.name()));
    }
  }

  /** Whether the contact's identity key changed and the change is not yet accepted. */
  identityChanged(accountId: string): boolean {
    return this.stores.identities.changed(accountId) !== null;
  }

  /**
   * Accepts the contact's changed identity key. Sessions begun under the old
   * key are archived (still there to read what was sent under them) and the
   * next send starts new ones with every device. False when nothing changed.
   */
  async trust(accountId: string): Promise<boolean> {
    if (!this.stores.identities.accept(accountId)) return false;
    for (const deviceId of this.contacts.devicesOf(accountId)) await this.archive(accountId, deviceId);
    this.contacts.forgetDevices(accountId);
    this.lists.forget(accountId);
    return true;
  }

  private async archive(accountId: string, deviceId: number): Promise<void> {
    const address = ProtocolAddress.new(accountId, deviceId);
    const session = await this.stores.sessions.getSession(address);
    if (!session) return;
    session.archiveCurrentState();
    await this.stores.sessions.saveSession(address, session);
  }

  /**
   * Starts new sessions with the devices whose sessions broke (something from
   * them could not be decrypted), from fresh bundles, as Signal does after a
   * retry receipt; the broken ones are archived. A device that is gone is
   * dropped, as the server would have said.
   */
  async renewBroken(accountId: string): Promise<void> {
    const broken = this.contacts.brokenDevices(accountId);
    if (broken.length === 0) return;
    for (const deviceId of broken) {
      try {
        await this.establish(accountId, [deviceId]);
      } catch (error) {
        if (!(error instanceof SottoError && error.code === status.NOT_FOUND)) throw error;
        this.stores.sessions.deleteSession(ProtocolAddress.new(accountId, deviceId));
        const contacts = this.contacts.read();
        contacts.devices[accountId] = (contacts.devices[accountId] ?? []).filter((id) => id !== deviceId);
        this.contacts.save(contacts);
      }
    }
    this.contacts.renewed(accountId, broken);
  }

  /** New devices get a session, removed ones are dropped, stale ones rebuilt. */
  async mend(accountId: string, mismatch: MismatchedDevices): Promise<void> {
    const contacts = this.contacts.read();
    const repair = sessionRepair(contacts.devices[accountId] ?? [], mismatch);
    for (const deviceId of repair.drop)
      this.stores.sessions.deleteSession(ProtocolAddress.new(accountId, deviceId));
    contacts.devices[accountId] = [...repair.keep];
    this.contacts.save(contacts);
    if (repair.fetch.length > 0) await this.establish(accountId, repair.fetch);
  }

  /** The contact's identity key, fetching their bundles (and so starting sessions) when none is known. */
  async identityOf(accountId: string): Promise<PublicKey | null> {
    const known = await this.stores.identities.getIdentity(ProtocolAddress.new(accountId, 1));
    if (known) return known;
    await this.establish(accountId);
    return this.stores.identities.getIdentity(ProtocolAddress.new(accountId, 1));
  }

  /**
   * Encrypts the plaintext once for each of the devices, through its session.
   * With a sender certificate, each message is then sealed (libsignal sealed
   * sender): only the recipient learns from the certificate inside who sent it.
   */
  async encrypt(
    accountId: string,
    deviceIds: readonly number[],
    plaintext: Uint8Array<ArrayBuffer>,
    sealedUnder?: SenderCertificate,
  ): Promise<OutgoingEnvelope[]> {
    const envelopes: OutgoingEnvelope[] = [];
    for (const deviceId of deviceIds) {
      const address = ProtocolAddress.new(accountId, deviceId);
      const ciphertext = await this.encryptOne(plaintext, address);
      const session = await this.stores.sessions.getSession(address);
      const destination = {
        destinationDeviceId: deviceId,
        destinationRegistrationId: session?.remoteRegistrationId() ?? 0,
      };
      if (sealedUnder) {
        const content = UnidentifiedSenderMessageContent.new(
          ciphertext,
          sealedUnder,
          ContentHint.Default,
          null,
        );
        envelopes.push({
          ...destination,
          type: EnvelopeType.ENVELOPE_TYPE_UNIDENTIFIED_SENDER,
          content: Buffer.from(await sealedSenderEncrypt(content, address, this.stores.identities)),
        });
        continue;
      }
      envelopes.push({
        ...destination,
        type:
          ciphertext.type() === PREKEY_CIPHERTEXT
            ? EnvelopeType.ENVELOPE_TYPE_PREKEY_MESSAGE
            : EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT,
        content: Buffer.from(ciphertext.serialize()),
      });
    }
    return envelopes;
  }

  /**
   * Encrypts through the session with one device. A session begun under an
   * identity key that is no longer the accepted one (the user accepted a new
   * key since) is replaced by a new one from a fresh bundle, whose key is
   * checked again.
   */
  private async encryptOne(plaintext: Uint8Array<ArrayBuffer>, address: ProtocolAddress) {
    const { sessions, identities } = this.stores;
    try {
      return await signalEncrypt(plaintext, address, this.local, sessions, identities);
    } catch (error) {
      const untrusted = error instanceof LibSignalErrorBase && error.code === ErrorCode.UntrustedIdentity;
      if (!untrusted) throw error;
      if (this.identityChanged(address.name())) {
        throw new UntrustedIdentityError(this.contacts.knownName(address.name()));
      }
      await this.archive(address.name(), address.deviceId());
      await this.establish(address.name(), [address.deviceId()]);
      return signalEncrypt(plaintext, address, this.local, sessions, identities);
    }
  }

  /**
   * Opens a sealed envelope: its certificate must validate against the
   * trust root at the time the server took the envelope. A pairwise message
   * must not name this account (its devices never send it one sealed); a
   * group's sender-key message may come from this account's other devices,
   * and is handed back for the group's sender key to decrypt. The sender is
   * the certificate's, which the server signed for the device that asked.
   */
  async decryptSealed(envelope: Envelope, trustRoot: PublicKey): Promise<OpenedSealed> {
    const { sessions, identities } = this.stores;
    const usmc = await sealedSenderDecryptToUsmc(bytes(envelope.content), identities);
    if (usmc.msgType() === SENDER_KEY_CIPHERTEXT) {
      const certificate = usmc.senderCertificate();
      if (!certificate.validate(trustRoot, Number(envelope.serverTimestampMs))) {
        throw new SottoError(`envelope ${envelope.guid}: its sender certificate does not validate`);
      }
      return {
        senderKeyMessage: usmc.contents(),
        accountId: certificate.senderUuid(),
        deviceId: certificate.senderDeviceId(),
      };
    }
    const opened = await sealedSenderDecryptMessage(
      bytes(envelope.content),
      trustRoot,
      Number(envelope.serverTimestampMs),
      null,
      this.local.name(),
      this.local.deviceId(),
      sessions,
      identities,
      this.stores.preKeys,
      this.stores.signedPreKeys,
      this.stores.kyberPreKeys,
    );
    if (opened.senderUuid() === this.local.name()) {
      throw new SottoError(
        `envelope ${envelope.guid}: a sealed message that claims to come from this account`,
      );
    }
    return { plaintext: opened.message(), accountId: opened.senderUuid(), deviceId: opened.deviceId() };
  }

  /** The padded plaintext of an envelope; a prekey message starts the session it arrives on. */
  async decrypt(envelope: Envelope): Promise<Uint8Array> {
    const from = ProtocolAddress.new(envelope.sourceAccountId, envelope.sourceDeviceId);
    const { sessions, identities } = this.stores;
    if (envelope.type === EnvelopeType.ENVELOPE_TYPE_PREKEY_MESSAGE) {
      return signalDecryptPreKey(
        PreKeySignalMessage.deserialize(bytes(envelope.content)),
        from,
        this.local,
        sessions,
        identities,
        this.stores.preKeys,
        this.stores.signedPreKeys,
        this.stores.kyberPreKeys,
      );
    }
    if (envelope.type === EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT) {
      return signalDecrypt(
        SignalMessage.deserialize(bytes(envelope.content)),
        from,
        this.local,
        sessions,
        identities,
      );
    }
    throw new SottoError(`cannot read envelope ${envelope.guid}: unsupported type ${envelope.type}`);
  }
}
