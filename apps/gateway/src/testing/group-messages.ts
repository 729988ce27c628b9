import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Metadata } from '@grpc/grpc-js';
import {
  ProtocolAddress,
  PublicKey,
  SenderCertificate,
  SenderKeyDistributionMessage,
  UnidentifiedSenderMessageContent,
  groupDecrypt,
  groupEncrypt,
  processSenderKeyDistributionMessage,
  sealedSenderDecryptToUsmc,
  sealedSenderMultiRecipientEncrypt,
} from '@signalapp/libsignal-client';
import {
  authorizationMetadata,
  deriveUnidentifiedAccessKey,
  generateDeviceKeys,
  publicDeviceKeys,
  unary,
} from '@sotto/client-sdk';
import { multiRecipientTopic } from '@sotto/contracts';
import type { Envelope } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import {
  AccountServiceClient,
  KeysServiceClient,
  MessagingServiceClient,
  type SendMultiRecipientRequest,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { gatewayCredentials, topicRecords } from '@sotto/testing';
import type { Pool } from 'pg';
import { Inbox } from './public-api';
import { SignalParty } from './signal-party';

/*
 * Group messages in one upload (SendMultiRecipient) as a real client makes them: people with
 * access keys, sessions from their bundles, a sender key distributed to the members, and one
 * upload sealed with libsignal's multi-recipient sealed sender for every device of every member.
 */

export interface GroupDevice {
  accountId: string;
  deviceId: number;
  registrationId: number;
  auth: Metadata;
  party: SignalParty;
}

export interface GroupMember {
  accountId: string;
  devices: GroupDevice[];
  accessKey: Uint8Array;
}

const bytes = (data: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(data);
const newName = (): string => `u_${randomUUID().replace(/-/g, '').slice(0, 12)}`;

/** The combined access key of a group send: the XOR of the recipients' keys. */
export function xor(keys: readonly Uint8Array[]): Buffer {
  const combined = Buffer.alloc(16);
  for (const key of keys) for (let i = 0; i < 16; i++) combined[i] ^= key[i] ?? 0;
  return combined;
}

export function multiRecipientRequest(
  message: Uint8Array,
  combinedAccessKey: Uint8Array,
): SendMultiRecipientRequest {
  return {
    message: Buffer.from(message),
    clientTimestampMs: String(Date.now()),
    ephemeral: false,
    combinedAccessKey: Buffer.from(combinedAccessKey),
  };
}

/** The records of the multi-recipient topic that carry `message`. */
export async function recordsOf(message: Uint8Array): Promise<number> {
  const digest = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
  const wanted = digest(message);
  return (await topicRecords(multiRecipientTopic.TOPIC)).filter(
    (record) => digest(multiRecipientTopic.decodeValue(record.value).message) === wanted,
  ).length;
}

/** People, groups and group messages through one gateway's public API. */
export class GroupMessages {
  readonly accounts: AccountServiceClient;
  readonly keys: KeysServiceClient;
  readonly messaging: MessagingServiceClient;

  /**
   * `trustRoot` checks the sender certificates of what members open; `directory`, a pool on the
   * directory's database, is needed only for people with more than one device.
   */
  constructor(
    gateway: string,
    private readonly trustRoot: PublicKey,
    private readonly directory?: Pool,
  ) {
    this.accounts = new AccountServiceClient(gateway, gatewayCredentials());
    this.keys = new KeysServiceClient(gateway, gatewayCredentials());
    this.messaging = new MessagingServiceClient(gateway, gatewayCredentials());
  }

  /**
   * A person with `devices` devices and an access key: the first registers, the others are
   * added to the directory's tables as a linked device would be (linking has no public API yet).
   */
  async person(devices = 1, unrestricted = false): Promise<GroupMember> {
    const generated = generateDeviceKeys(5);
    const registered = await unary(this.accounts.register.bind(this.accounts), {
      username: newName(),
      identityKey: Buffer.from(generated.identity.publicKey.serialize()),
      device: publicDeviceKeys(generated),
    });
    const { accountId } = registered;
    const first: GroupDevice = {
      accountId,
      deviceId: 1,
      registrationId: generated.registrationId,
      auth: authorizationMetadata(registered),
      party: new SignalParty(generated, accountId),
    };
    const all = [first];
    for (let deviceId = 2; deviceId <= devices; deviceId++) {
      if (this.directory === undefined) throw new Error('more than one device needs the directory database');
      // The same identity as the account's first device: one person, several devices.
      const more = generateDeviceKeys(0, generated.identity);
      const secret = randomBytes(32).toString('base64url');
      const salt = randomBytes(16);
      await this.directory.query(
        `INSERT INTO directory.devices (account_id, device_id, registration_id, secret_salt, secret_hash,
           signed_pre_key_id, signed_pre_key, signed_pre_key_signature,
           kyber_last_resort_key_id, kyber_last_resort_key, kyber_last_resort_signature)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        [
          accountId,
          deviceId,
          more.registrationId,
          salt,
          createHash('sha256').update(salt).update(secret, 'utf8').digest(),
          more.signedPreKey.keyId,
          Buffer.from(more.signedPreKey.privateKey.getPublicKey().serialize()),
          Buffer.from(more.signedPreKey.signature),
          more.kyberLastResort.keyId,
          Buffer.from(more.kyberLastResort.keyPair.getPublicKey().serialize()),
          Buffer.from(more.kyberLastResort.signature),
        ],
      );
      all.push({
        accountId,
        deviceId,
        registrationId: more.registrationId,
        auth: authorizationMetadata({ accountId, deviceId, deviceSecret: secret }),
        party: new SignalParty(more, accountId, deviceId),
      });
    }
    const accessKey = deriveUnidentifiedAccessKey(randomBytes(32));
    await unary(
      this.accounts.setUnidentifiedAccess.bind(this.accounts),
      { unidentifiedAccessKey: Buffer.from(accessKey), unrestrictedUnidentifiedAccess: unrestricted },
      { metadata: first.auth },
    );
    return { accountId, devices: all, accessKey: unrestricted ? new Uint8Array(16) : accessKey };
  }

  /** A session from `from` to each of `to`'s devices. */
  async sessionsTo(from: GroupDevice, to: GroupMember): Promise<ProtocolAddress[]> {
    const addresses: ProtocolAddress[] = [];
    for (const device of to.devices) {
      const { bundles } = await unary(
        this.keys.getPreKeyBundle.bind(this.keys),
        { accountId: to.accountId, deviceId: device.deviceId },
        { metadata: from.auth },
      );
      addresses.push(await from.party.startSession(to.accountId, bundles[0]));
    }
    return addresses;
  }

  /** A group of `sender` and `members`: the sender's key distributed to every member device (pairwise, in a real client). */
  async group(sender: GroupDevice, members: GroupMember[]): Promise<{ distributionId: string }> {
    const distributionId = randomUUID();
    const distribution = await SenderKeyDistributionMessage.create(
      sender.party.address,
      distributionId,
      sender.party.senderKeys,
    );
    for (const member of members) {
      for (const device of member.devices) {
        await processSenderKeyDistributionMessage(
          sender.party.address,
          distribution,
          device.party.senderKeys,
        );
      }
    }
    return { distributionId };
  }

  /** `text` for the group, sealed once for every device of `addresses`. */
  async sentMessage(
    sender: GroupDevice,
    distributionId: string,
    addresses: ProtocolAddress[],
    text: string,
  ): Promise<Buffer> {
    const { certificate } = await unary(
      this.accounts.getSenderCertificate.bind(this.accounts),
      {},
      { metadata: sender.auth },
    );
    const ciphertext = await groupEncrypt(
      sender.party.address,
      distributionId,
      sender.party.senderKeys,
      bytes(Buffer.from(text)),
    );
    const content = UnidentifiedSenderMessageContent.new(
      ciphertext,
      SenderCertificate.deserialize(bytes(certificate)),
      0,
      null,
    );
    return Buffer.from(
      await sealedSenderMultiRecipientEncrypt(
        content,
        addresses,
        sender.party.identities,
        sender.party.sessions,
      ),
    );
  }

  /** What `device` is handed on connecting, acknowledged, up to the empty-queue marker. */
  async drain(device: GroupDevice): Promise<Envelope[]> {
    const inbox = new Inbox(this.messaging.connect(device.auth));
    try {
      return await inbox.untilEmpty();
    } finally {
      inbox.call.end();
    }
  }

  /** What `device` reads in `copy`, and who the certificate (checked against the trust root) says sent it. */
  async open(
    device: GroupDevice,
    copy: Envelope,
  ): Promise<{ text: string; sender: string; senderDevice: number }> {
    const usmc = await sealedSenderDecryptToUsmc(bytes(copy.content), device.party.identities);
    const certificate = usmc.senderCertificate();
    expect(certificate.validate(this.trustRoot, Date.now())).toBe(true);
    const sender = ProtocolAddress.new(certificate.senderUuid(), certificate.senderDeviceId());
    const plain = await groupDecrypt(sender, device.party.senderKeys, usmc.contents());
    return { text: Buffer.from(plain).toString(), sender: sender.name(), senderDevice: sender.deviceId() };
  }

  close(): void {
    this.accounts.close();
    this.keys.close();
    this.messaging.close();
  }
}
