/**
 * The client side of a group message for the load generator, with real
 * libsignal and its state in memory: a sender's sessions with every other
 * member's device (from the bundles the gateway hands out), its sender key and
 * sender certificate; each group message encrypted once with the sender key
 * and sealed once for all recipients (sealedSenderMultiRecipientEncrypt), as
 * a client uploads it; and a recipient opening its copy.
 */
import { randomUUID } from 'node:crypto';
import {
  IdentityChange,
  IdentityKeyStore,
  ProtocolAddress,
  SenderCertificate,
  SenderKeyDistributionMessage,
  SenderKeyRecord,
  SenderKeyStore,
  SessionRecord,
  SessionStore,
  UnidentifiedSenderMessageContent,
  groupDecrypt,
  groupEncrypt,
  processPreKeyBundle,
  processSenderKeyDistributionMessage,
  sealedSenderDecryptToUsmc,
  sealedSenderMultiRecipientEncrypt,
  type PrivateKey,
  type PublicKey,
  type Uuid,
} from '@signalapp/libsignal-client';
import type { ChannelCredentials } from '@grpc/grpc-js';
import { preKeyBundle, unary } from '@sotto/client-sdk';
import { AccountServiceClient, KeysServiceClient } from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import type { Device } from './wire-load';

const bytes = (data: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(data);

class MemorySessions extends SessionStore {
  private readonly records = new Map<string, SessionRecord>();

  saveSession(name: ProtocolAddress, record: SessionRecord): Promise<void> {
    this.records.set(name.toString(), record);
    return Promise.resolve();
  }

  getSession(name: ProtocolAddress): Promise<SessionRecord | null> {
    return Promise.resolve(this.records.get(name.toString()) ?? null);
  }

  getExistingSessions(addresses: ProtocolAddress[]): Promise<SessionRecord[]> {
    return Promise.resolve(
      addresses.map((address) => {
        const record = this.records.get(address.toString());
        if (record === undefined) throw new Error(`no session with ${address.toString()}`);
        return record;
      }),
    );
  }
}

/** A device's identity; it trusts every member's on first use (the load has no user to ask). */
class MemoryIdentities extends IdentityKeyStore {
  private readonly known = new Map<string, PublicKey>();

  constructor(private readonly device: Device) {
    super();
  }

  getIdentityKey(): Promise<PrivateKey> {
    return Promise.resolve(this.device.keys.identity.privateKey);
  }

  getLocalRegistrationId(): Promise<number> {
    return Promise.resolve(this.device.keys.registrationId);
  }

  saveIdentity(name: ProtocolAddress, key: PublicKey): Promise<IdentityChange> {
    this.known.set(name.name(), key);
    return Promise.resolve(IdentityChange.NewOrUnchanged);
  }

  isTrustedIdentity(name: ProtocolAddress, key: PublicKey): Promise<boolean> {
    return Promise.resolve(this.known.get(name.name())?.equals(key) ?? true);
  }

  getIdentity(name: ProtocolAddress): Promise<PublicKey | null> {
    return Promise.resolve(this.known.get(name.name()) ?? null);
  }
}

class MemorySenderKeys extends SenderKeyStore {
  private readonly records = new Map<string, SenderKeyRecord>();

  saveSenderKey(sender: ProtocolAddress, distributionId: Uuid, record: SenderKeyRecord): Promise<void> {
    this.records.set(`${sender.toString()}/${distributionId}`, record);
    return Promise.resolve();
  }

  getSenderKey(sender: ProtocolAddress, distributionId: Uuid): Promise<SenderKeyRecord | null> {
    return Promise.resolve(this.records.get(`${sender.toString()}/${distributionId}`) ?? null);
  }
}

/** A member device's libsignal state. */
export class GroupMember {
  readonly address: ProtocolAddress;
  readonly sessions = new MemorySessions();
  readonly identities: MemoryIdentities;
  readonly senderKeys = new MemorySenderKeys();

  constructor(readonly device: Device) {
    this.address = ProtocolAddress.new(device.accountId, 1);
    this.identities = new MemoryIdentities(device);
  }

  /** What this device reads in its copy of a group message. */
  async open(copy: Uint8Array): Promise<Uint8Array> {
    const usmc = await sealedSenderDecryptToUsmc(bytes(copy), this.identities);
    const certificate = usmc.senderCertificate();
    const sender = ProtocolAddress.new(certificate.senderUuid(), certificate.senderDeviceId());
    return groupDecrypt(sender, this.senderKeys, usmc.contents());
  }
}

/** A member that sends to the group: sessions with every other member, its sender key, its certificate. */
export class GroupSender {
  private constructor(
    readonly member: GroupMember,
    readonly recipients: readonly ProtocolAddress[],
    private readonly distributionId: string,
    private readonly certificate: SenderCertificate,
  ) {}

  /**
   * Sets `member` up to send to `others`, as a client does: each one's bundle
   * from the gateway and a session with it, a sender certificate, and its
   * sender key handed to `readers` (in a client, over the pairwise sessions;
   * here into their stores directly, as only the load generator's check of
   * what arrives reads them).
   */
  static async start(
    member: GroupMember,
    others: readonly GroupMember[],
    readers: readonly GroupMember[],
    server: string,
    tls: ChannelCredentials,
  ): Promise<GroupSender> {
    const keys = new KeysServiceClient(server, tls);
    const accounts = new AccountServiceClient(server, tls);
    try {
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(8, others.length) }, async () => {
          while (next < others.length) {
            const other = others[next++];
            if (other === undefined) break;
            const { bundles } = await unary(
              keys.getPreKeyBundle.bind(keys),
              { accountId: other.device.accountId, deviceId: 1 },
              { metadata: member.device.auth, deadlineMs: 60_000 },
            );
            const [bundle] = bundles;
            if (bundle === undefined) throw new Error(`no prekey bundle for ${other.device.accountId}`);
            await processPreKeyBundle(
              preKeyBundle(bundle),
              other.address,
              member.address,
              member.sessions,
              member.identities,
            );
          }
        }),
      );
      const { certificate } = await unary(
        accounts.getSenderCertificate.bind(accounts),
        {},
        { metadata: member.device.auth, deadlineMs: 60_000 },
      );
      const distributionId = randomUUID();
      const distribution = await SenderKeyDistributionMessage.create(
        member.address,
        distributionId,
        member.senderKeys,
      );
      for (const reader of readers) {
        await processSenderKeyDistributionMessage(member.address, distribution, reader.senderKeys);
      }
      return new GroupSender(
        member,
        others.map((other) => other.address),
        distributionId,
        SenderCertificate.deserialize(bytes(certificate)),
      );
    } finally {
      keys.close();
      accounts.close();
    }
  }

  /** `plaintext` for the group: encrypted once with the sender key, sealed once for every recipient. */
  async upload(plaintext: Uint8Array): Promise<Uint8Array> {
    const ciphertext = await groupEncrypt(
      this.member.address,
      this.distributionId,
      this.member.senderKeys,
      bytes(plaintext),
    );
    const content = UnidentifiedSenderMessageContent.new(ciphertext, this.certificate, 0, null);
    return sealedSenderMultiRecipientEncrypt(
      content,
      [...this.recipients],
      this.member.identities,
      this.member.sessions,
    );
  }
}
