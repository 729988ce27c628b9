import { Metadata } from '@grpc/grpc-js';
import { gatewayCredentials, MemoryIdentityStore, MemorySessionStore } from '@sotto/testing';
import {
  CiphertextMessageType,
  KEMPublicKey,
  PreKeyBundle,
  ProtocolAddress,
  PublicKey,
  processPreKeyBundle,
  signalEncrypt,
} from '@signalapp/libsignal-client';
import {
  authorizationMetadata,
  type GeneratedDeviceKeys,
  generateDeviceKeys,
  publicDeviceKeys,
  signDeviceList,
  unary,
} from '@sotto/client-sdk';
import { EnvelopeType, type Envelope } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import {
  AccountServiceClient,
  DeviceServiceClient,
  KeysServiceClient,
  MessagingServiceClient,
  type ConnectResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';

/*
 * A registered user who does not run the Sotto client: they talk to the
 * gateway with the generated clients and libsignal, keep their sessions in
 * memory, and send whatever bytes they like, under their own credentials.
 */

/** A victim's first device, as the attacker addresses it. */
export interface Target {
  readonly accountId: string;
  readonly deviceId: number;
  readonly registrationId: number;
  readonly identityKey: PublicKey;
}

/** A Sotto message as the client writes it: JSON, then 0x80 and zeros up to a multiple of 160 bytes. */
export function sottoPlaintext(json: string): Uint8Array<ArrayBuffer> {
  const bytes = Buffer.from(json, 'utf8');
  const padded = new Uint8Array(Math.ceil((bytes.length + 1) / 160) * 160);
  padded.set(bytes);
  padded[bytes.length] = 0x80;
  return padded;
}

export class Attacker {
  private readonly sessions = new MemorySessionStore();
  private readonly identities: MemoryIdentityStore;
  private readonly local: ProtocolAddress;

  private constructor(
    readonly username: string,
    readonly accountId: string,
    readonly keys: GeneratedDeviceKeys,
    private readonly auth: Metadata,
    private readonly accounts: AccountServiceClient,
    private readonly keysService: KeysServiceClient,
    private readonly messaging: MessagingServiceClient,
  ) {
    // Trusts every key: the attacker has nobody to be careful about.
    this.identities = new MemoryIdentityStore(keys.identity.privateKey, keys.registrationId, 'any');
    this.local = ProtocolAddress.new(accountId, 1);
  }

  static async register(gateway: string, username: string): Promise<Attacker> {
    const accounts = new AccountServiceClient(gateway, gatewayCredentials());
    const keys = generateDeviceKeys(10);
    const registered = await unary(accounts.register.bind(accounts), {
      username,
      identityKey: Buffer.from(keys.identity.publicKey.serialize()),
      device: publicDeviceKeys(keys),
    });
    const auth = authorizationMetadata(registered);
    // Like any client, it signs and publishes its device list, or nobody's client would send to it.
    const devices = new DeviceServiceClient(gateway, gatewayCredentials());
    try {
      await unary(
        devices.setDeviceList.bind(devices),
        {
          deviceList: signDeviceList(
            {
              accountId: registered.accountId,
              version: 1n,
              devices: [{ deviceId: registered.deviceId, registrationId: keys.registrationId }],
              signedAtMs: Date.now(),
            },
            keys.identity.privateKey,
          ),
        },
        { metadata: auth },
      );
    } finally {
      devices.close();
    }
    return new Attacker(
      username,
      registered.accountId,
      keys,
      auth,
      accounts,
      new KeysServiceClient(gateway, gatewayCredentials()),
      new MessagingServiceClient(gateway, gatewayCredentials()),
    );
  }

  /** Looks the victim up and starts a libsignal session with their first device (claiming one of its one-time keys). */
  async sessionWith(username: string): Promise<Target> {
    const { accountId } = await unary(
      this.accounts.lookupUsername.bind(this.accounts),
      { username },
      { metadata: this.auth },
    );
    const { bundles } = await unary(
      this.keysService.getPreKeyBundle.bind(this.keysService),
      { accountId, deviceId: 1 },
      { metadata: this.auth },
    );
    const [bundle] = bundles;
    const { signedPreKey: signed, kyberPreKey: kyber, oneTimePreKey: oneTime } = bundle ?? {};
    if (!bundle || !signed || !kyber) throw new Error(`no complete prekey bundle for ${username}`);
    const identityKey = PublicKey.deserialize(new Uint8Array(bundle.identityKey));
    await processPreKeyBundle(
      PreKeyBundle.new(
        bundle.registrationId,
        bundle.deviceId,
        oneTime ? oneTime.keyId : null,
        oneTime ? PublicKey.deserialize(new Uint8Array(oneTime.publicKey)) : null,
        signed.keyId,
        PublicKey.deserialize(new Uint8Array(signed.publicKey)),
        new Uint8Array(signed.signature),
        identityKey,
        kyber.keyId,
        KEMPublicKey.deserialize(new Uint8Array(kyber.publicKey)),
        new Uint8Array(kyber.signature),
      ),
      ProtocolAddress.new(accountId, bundle.deviceId),
      this.local,
      this.sessions,
      this.identities,
    );
    return { accountId, deviceId: bundle.deviceId, registrationId: bundle.registrationId, identityKey };
  }

  /** Encrypts through the session with the target, as a real client would. */
  async encrypt(
    target: Target,
    plaintext: Uint8Array<ArrayBuffer>,
  ): Promise<{ type: EnvelopeType; content: Buffer }> {
    const ciphertext = await signalEncrypt(
      plaintext,
      ProtocolAddress.new(target.accountId, target.deviceId),
      this.local,
      this.sessions,
      this.identities,
    );
    const type =
      ciphertext.type() === (CiphertextMessageType.PreKey as number)
        ? EnvelopeType.ENVELOPE_TYPE_PREKEY_MESSAGE
        : EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT;
    return { type, content: Buffer.from(ciphertext.serialize()) };
  }

  /** Sends one envelope of any type and content to the target's device; the server accepts what it cannot read. */
  async send(target: Target, type: EnvelopeType, content: Uint8Array): Promise<void> {
    await unary(
      this.messaging.send.bind(this.messaging),
      {
        destinationAccountId: target.accountId,
        clientTimestampMs: String(Date.now()),
        ephemeral: false,
        envelopes: [
          {
            destinationDeviceId: target.deviceId,
            destinationRegistrationId: target.registrationId,
            type,
            content: Buffer.from(content),
          },
        ],
      },
      { metadata: this.auth },
    );
  }

  /**
   * The next `count` envelopes delivered to the attacker, each acknowledged;
   * waits for them to arrive, then closes the stream once the gateway has
   * the acknowledgements.
   */
  receive(count: number): Promise<Envelope[]> {
    const call = this.messaging.connect(this.auth);
    const envelopes: Envelope[] = [];
    return new Promise((resolve, reject) => {
      call.on('data', (message: ConnectResponse) => {
        if (!message.envelope || envelopes.length === count) return;
        envelopes.push(message.envelope);
        call.write({ ack: { guids: [message.envelope.guid] } });
        if (envelopes.length === count) call.end();
      });
      call.on('end', () => resolve(envelopes));
      call.on('error', reject);
    });
  }

  close(): void {
    for (const client of [this.accounts, this.keysService, this.messaging]) client.close();
  }
}
