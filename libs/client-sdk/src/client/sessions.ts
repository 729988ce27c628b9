import {
  CiphertextMessageType,
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
import {
  EnvelopeType,
  type Envelope,
  type MismatchedDevices,
  type OutgoingEnvelope,
} from '@sotto/contracts/generated/sotto/common/v1/envelope';
import type { PreKeyBundle as BundleMessage } from '@sotto/contracts/generated/sotto/common/v1/keys';
import { SottoError } from '../errors';
import type { SignalStores } from '../signal-stores';
import { bytes } from './bytes';
import type { GatewayConnection } from './connection';
import { deviceList, type ContactBook } from './contacts';
import { sessionRepair } from './mismatched-devices';

// CiphertextMessage.type() answers a plain number.
const PREKEY_CIPHERTEXT: number = CiphertextMessageType.PreKey;

function preKeyBundle(bundle: BundleMessage): PreKeyBundle {
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
  ) {}

  /** Starts sessions from freshly fetched bundles: every device of the account, or the given ones. */
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
    const contacts = this.contacts.read();
    // Fetching every device replaces the list; fetching some adds to it.
    const devices = deviceIds === undefined ? [] : [...(contacts.devices[accountId] ?? [])];
    for (const bundle of bundles) {
      await processPreKeyBundle(
        preKeyBundle(bundle),
        ProtocolAddress.new(accountId, bundle.deviceId),
        this.local,
        this.stores.sessions,
        this.stores.identities,
      );
      devices.push(bundle.deviceId);
    }
    contacts.devices[accountId] = deviceList(devices);
    this.contacts.save(contacts);
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

  /** Encrypts the plaintext once for each of the devices, through its session. */
  async encrypt(
    accountId: string,
    deviceIds: readonly number[],
    plaintext: Uint8Array<ArrayBuffer>,
  ): Promise<OutgoingEnvelope[]> {
    const envelopes: OutgoingEnvelope[] = [];
    for (const deviceId of deviceIds) {
      const address = ProtocolAddress.new(accountId, deviceId);
      const ciphertext = await signalEncrypt(
        plaintext,
        address,
        this.local,
        this.stores.sessions,
        this.stores.identities,
      );
      const session = await this.stores.sessions.getSession(address);
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
    return envelopes;
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
