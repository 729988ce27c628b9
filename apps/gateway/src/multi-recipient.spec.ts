import { createHash, randomBytes, randomInt, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Metadata, status } from '@grpc/grpc-js';
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
import { envelopesTopic, multiRecipientTopic } from '@sotto/contracts';
import {
  EnvelopeType,
  MultiRecipientMismatch,
  type Envelope,
} from '@sotto/contracts/generated/sotto/common/v1/envelope';
import { DirectoryServiceService } from '@sotto/contracts/generated/sotto/directory/v1/directory';
import {
  AccountServiceClient,
  KeysServiceClient,
  MessagingServiceClient,
  type SendMultiRecipientRequest,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { postgresClientConfig } from '@sotto/platform/postgres';
import {
  accountIdForms,
  gatewayCredentials,
  identityFiles,
  outcome,
  redisHolding,
  scrapeMetrics,
  startGatewayFor,
  startOlderService,
  startTcpProxy,
  startTestPlatform,
  startTestService,
  topicRecords,
  type Platform,
  type TestService,
} from '@sotto/testing';
import { Pool } from 'pg';
import { SEALED_SEND_REFUSED } from './messaging/sealed-sends';
import { Inbox } from './testing/public-api';
import { SignalParty } from './testing/signal-party';

// A group message in one upload, played through the public API: the sender encrypts once for
// every device of every recipient (libsignal's multi-recipient sealed sender over a sender key),
// authorised by the XOR of the recipients' access keys; the relay logs it as one record and
// splits it per device; each device decrypts its copy and learns the sender from the certificate
// only. Garbage, wrong or partial keys, strangers, wrong device lists and floods change nothing.

interface Device {
  accountId: string;
  deviceId: number;
  registrationId: number;
  auth: Metadata;
  party: SignalParty;
}

interface Person {
  accountId: string;
  devices: Device[];
  accessKey: Uint8Array;
}

const bytes = (data: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(data);
const freshAddress = (): string => `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
const newName = (): string => `u_${randomUUID().replace(/-/g, '').slice(0, 12)}`;

function xor(keys: readonly Uint8Array[]): Buffer {
  const combined = Buffer.alloc(16);
  for (const key of keys) for (let i = 0; i < 16; i++) combined[i] ^= key[i] ?? 0;
  return combined;
}

/** The records of the multi-recipient topic that carry `message`. */
async function recordsOf(message: Uint8Array): Promise<number> {
  const digest = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
  const wanted = digest(message);
  return (await topicRecords(multiRecipientTopic.TOPIC)).filter(
    (record) => digest(multiRecipientTopic.decodeValue(record.value).message) === wanted,
  ).length;
}

describe('group messages in one upload (SendMultiRecipient), through the public API', () => {
  let platform: Platform & { databaseUrl: string };
  let trustRoot: PublicKey;
  let accounts: AccountServiceClient;
  let keys: KeysServiceClient;
  let messaging: MessagingServiceClient;
  let pool: Pool;
  // A gateway with small multi-recipient limits, in front of the same services.
  let limited: TestService;
  const closers: { close(): unknown }[] = [];

  beforeAll(async () => {
    platform = await startTestPlatform();
    trustRoot = PublicKey.deserialize(bytes(Buffer.from(platform.senderCertificateTrustRoot, 'base64')));
    accounts = new AccountServiceClient(platform.gateway, gatewayCredentials());
    keys = new KeysServiceClient(platform.gateway, gatewayCredentials());
    messaging = new MessagingServiceClient(platform.gateway, gatewayCredentials());
    closers.push(accounts, keys, messaging);
    pool = new Pool({
      ...postgresClientConfig(platform.databaseUrl, identityFiles('prekey-directory')),
      max: 1,
    });
    limited = await startGatewayFor(platform, {
      SOTTO_RATE_LIMITS: 'on',
      MULTI_RECIPIENT_MAX_RECIPIENTS: '2',
      // Periods of an hour: nothing refills while a test runs.
      RATE_LIMIT_MULTI_RECIPIENT_SEND_PER_SOURCE: '3/1h',
      RATE_LIMIT_MULTI_RECIPIENT_SEND_PER_DESTINATION: '2/1h',
    });
  });

  afterAll(async () => {
    for (const closer of closers) closer.close();
    await pool?.end();
    await limited?.stop();
    await platform?.stop();
  });

  /**
   * A person with `devices` devices and an access key: the first registers, the others are
   * added to the directory's tables as a linked device would be (linking has no public API yet).
   */
  async function person(devices = 1, unrestricted = false): Promise<Person> {
    const generated = generateDeviceKeys(5);
    const registered = await unary(accounts.register.bind(accounts), {
      username: newName(),
      identityKey: Buffer.from(generated.identity.publicKey.serialize()),
      device: publicDeviceKeys(generated),
    });
    const { accountId } = registered;
    const first: Device = {
      accountId,
      deviceId: 1,
      registrationId: generated.registrationId,
      auth: authorizationMetadata(registered),
      party: new SignalParty(generated, accountId),
    };
    const all = [first];
    for (let deviceId = 2; deviceId <= devices; deviceId++) {
      // The same identity as the account's first device: one person, several devices.
      const more = generateDeviceKeys(0, generated.identity);
      const secret = randomBytes(32).toString('base64url');
      const salt = randomBytes(16);
      await pool.query(
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
      accounts.setUnidentifiedAccess.bind(accounts),
      { unidentifiedAccessKey: Buffer.from(accessKey), unrestrictedUnidentifiedAccess: unrestricted },
      { metadata: first.auth },
    );
    return { accountId, devices: all, accessKey: unrestricted ? new Uint8Array(16) : accessKey };
  }

  /** A session from `from` to each of `to`'s devices (under `as`, when the test wants it wrong). */
  async function sessionsTo(from: Device, to: Person): Promise<ProtocolAddress[]> {
    const addresses: ProtocolAddress[] = [];
    for (const device of to.devices) {
      const { bundles } = await unary(
        keys.getPreKeyBundle.bind(keys),
        { accountId: to.accountId, deviceId: device.deviceId },
        { metadata: from.auth },
      );
      addresses.push(await from.party.startSession(to.accountId, bundles[0]));
    }
    return addresses;
  }

  /** A group of `sender` and `members`: the sender's key distributed to every member device (pairwise, in a real client). */
  async function group(sender: Device, members: Person[]): Promise<{ distributionId: string }> {
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
  async function sentMessage(
    sender: Device,
    distributionId: string,
    addresses: ProtocolAddress[],
    text: string,
  ): Promise<Buffer> {
    const { certificate } = await unary(
      accounts.getSenderCertificate.bind(accounts),
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

  function request(message: Uint8Array, combinedAccessKey: Uint8Array): SendMultiRecipientRequest {
    return {
      message: Buffer.from(message),
      clientTimestampMs: String(Date.now()),
      ephemeral: false,
      combinedAccessKey: Buffer.from(combinedAccessKey),
    };
  }

  async function anonymousClient(gateway: string, address = freshAddress()): Promise<MessagingServiceClient> {
    const proxy = await startTcpProxy(gateway, { from: address });
    closers.push({ close: () => void proxy.close() });
    const client = new MessagingServiceClient(proxy.address, gatewayCredentials());
    closers.push(client);
    return client;
  }
  const sendMulti = (client: MessagingServiceClient, sent: SendMultiRecipientRequest) =>
    unary(client.sendMultiRecipient.bind(client), sent);

  async function drain(device: Device): Promise<Envelope[]> {
    const inbox = new Inbox(messaging.connect(device.auth));
    try {
      return await inbox.untilEmpty();
    } finally {
      inbox.call.end();
    }
  }

  /** What `device` reads in `copy`, and who the certificate (checked against the trust root) says sent it. */
  async function open(
    device: Device,
    copy: Envelope,
  ): Promise<{ text: string; sender: string; senderDevice: number }> {
    const usmc = await sealedSenderDecryptToUsmc(bytes(copy.content), device.party.identities);
    const certificate = usmc.senderCertificate();
    expect(certificate.validate(trustRoot, Date.now())).toBe(true);
    const sender = ProtocolAddress.new(certificate.senderUuid(), certificate.senderDeviceId());
    const plain = await groupDecrypt(sender, device.party.senderKeys, usmc.contents());
    return { text: Buffer.from(plain).toString(), sender: sender.name(), senderDevice: sender.deviceId() };
  }

  /** Waits (routing is asynchronous) until `device`'s mailbox in Redis holds `guid`. */
  async function queued(guid: string): Promise<Buffer[]> {
    for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
      const pieces = await redisHolding(guid);
      if (pieces.length > 0) return pieces;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return [];
  }

  it('delivers one upload to every device of every recipient, each reading it and learning the sender only from the certificate', async () => {
    const [alice, bob, carol, dave] = await Promise.all([person(), person(2), person(1), person(2, true)]);
    const sender = alice.devices[0];
    const recipients = [bob, carol, dave];
    const addresses = (await Promise.all(recipients.map((to) => sessionsTo(sender, to)))).flat();
    const { distributionId } = await group(sender, recipients);
    const message = await sentMessage(sender, distributionId, addresses, 'hello group');

    const client = await anonymousClient(platform.gateway);
    const { serverTimestampMs } = await sendMulti(
      client,
      request(message, xor(recipients.map((r) => r.accessKey))),
    );
    expect(Number(serverTimestampMs)).toBeGreaterThan(0);

    const delivered = new Map<string, Envelope>();
    for (const device of recipients.flatMap((r) => r.devices)) {
      const [copy, ...more] = await drain(device);
      expect(more).toEqual([]);
      expect(copy).toMatchObject({
        type: EnvelopeType.ENVELOPE_TYPE_UNIDENTIFIED_SENDER,
        sourceAccountId: '',
        sourceDeviceId: 0,
        destinationAccountId: device.accountId,
        destinationDeviceId: device.deviceId,
        ephemeral: false,
      });
      expect(await open(device, copy)).toEqual({
        text: 'hello group',
        sender: alice.accountId,
        senderDevice: 1,
      });
      delivered.set(`${device.accountId}.${device.deviceId}`, copy);
    }
    // Every copy its own GUID; nothing for the sender.
    expect(new Set([...delivered.values()].map((copy) => copy.guid)).size).toBe(5);
    expect(await drain(sender)).toEqual([]);

    // Kafka: one record, on the multi-recipient topic, naming no sender; no copy on the envelope topic.
    expect(await recordsOf(message)).toBe(1);
    const record = (await topicRecords(multiRecipientTopic.TOPIC)).find((r) =>
      Buffer.from(multiRecipientTopic.decodeValue(r.value).message).equals(message),
    )!;
    for (const form of accountIdForms(alice.accountId)) {
      expect([record.key, record.value].some((part) => part.includes(form))).toBe(false);
    }
    const guids = [...delivered.values()].map((copy) => copy.guid);
    const envelopeRecords = await topicRecords(envelopesTopic.TOPIC);
    expect(envelopeRecords.filter((r) => guids.some((g) => r.value.includes(g)))).toEqual([]);
  });

  it('keeps the copies in the mailboxes with no sender until they are delivered', async () => {
    const [alice, bob, carol] = await Promise.all([person(), person(2), person()]);
    const sender = alice.devices[0];
    const addresses = [...(await sessionsTo(sender, bob)), ...(await sessionsTo(sender, carol))];
    const { distributionId } = await group(sender, [bob, carol]);
    const message = await sentMessage(sender, distributionId, addresses, 'queued');
    const client = await anonymousClient(platform.gateway);
    await sendMulti(client, request(message, xor([bob.accessKey, carol.accessKey])));
    const record = (await topicRecords(multiRecipientTopic.TOPIC))
      .map((r) => multiRecipientTopic.decodeValue(r.value))
      .find((r) => Buffer.from(r.message).equals(message))!;
    for (const device of [...bob.devices, ...carol.devices]) {
      const copyGuid = multiRecipientTopic.copyGuid(record.guid, device.accountId, device.deviceId);
      const pieces = await queued(copyGuid);
      expect(pieces.length).toBeGreaterThan(0);
      for (const piece of pieces)
        for (const form of accountIdForms(alice.accountId)) expect(piece.includes(form)).toBe(false);
      expect((await drain(device)).map((copy) => copy.guid)).toEqual([copyGuid]);
    }
  });

  it('answers a wrong key, a key that leaves a recipient out, and a stranger alike, and sends nothing', async () => {
    const [alice, bob, carol] = await Promise.all([person(), person(), person()]);
    const sender = alice.devices[0];
    const addresses = [...(await sessionsTo(sender, bob)), ...(await sessionsTo(sender, carol))];
    const { distributionId } = await group(sender, [bob, carol]);
    const message = await sentMessage(sender, distributionId, addresses, 'not for you');
    // A recipient that does not exist: a session under an account id nobody has.
    const ghost = randomUUID();
    const { bundles } = await unary(
      keys.getPreKeyBundle.bind(keys),
      { accountId: carol.accountId, deviceId: 1 },
      { metadata: sender.auth },
    );
    const ghostAddress = await sender.party.startSession(ghost, bundles[0]);
    const toGhost = await sentMessage(sender, distributionId, [...addresses, ghostAddress], 'to a ghost');

    const client = await anonymousClient(platform.gateway);
    const attempts = [
      request(message, randomBytes(16)),
      // Bob's key alone: Carol's consent is missing.
      request(message, bob.accessKey),
      request(message, new Uint8Array(16)),
      request(toGhost, xor([bob.accessKey, carol.accessKey])),
    ];
    for (const attempt of attempts) {
      const error = await outcome(sendMulti(client, attempt));
      expect({ code: error?.code, details: error?.details }).toEqual({
        code: status.UNAUTHENTICATED,
        details: SEALED_SEND_REFUSED,
      });
    }
    // Garbage, a short key, and a credential that does not stand in for the key.
    const garbage = await outcome(sendMulti(client, request(randomBytes(200), bob.accessKey)));
    expect({ code: garbage?.code, details: garbage?.details }).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'message: is not a sealed-sender multi-recipient message',
    });
    const shortKey = await outcome(sendMulti(client, request(message, randomBytes(15))));
    expect({ code: shortKey?.code, details: shortKey?.details }).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'combined_access_key: must be 16 bytes',
    });
    const withCredential = await outcome(
      unary(messaging.sendMultiRecipient.bind(messaging), request(message, randomBytes(16)), {
        metadata: sender.auth,
      }),
    );
    expect(withCredential?.code).toBe(status.UNAUTHENTICATED);

    expect(await drain(bob.devices[0])).toEqual([]);
    expect(await drain(carol.devices[0])).toEqual([]);
    expect(await recordsOf(message)).toBe(0);
    expect(await recordsOf(toGhost)).toBe(0);
  });

  it('answers missing, extra and stale devices of several recipients in one trailer, and sends nothing', async () => {
    const [alice, bob, carol, dave] = await Promise.all([person(), person(2), person(), person(2)]);
    const sender = alice.devices[0];
    const bobs = await sessionsTo(sender, bob);
    const carols = await sessionsTo(sender, carol);
    // Bob's device 2 left out; Carol given a device 3 she does not have (her device 1's keys);
    // Dave's device 2 sealed to with his device 1's keys, so with device 1's registration id.
    const { bundles: carolBundles } = await unary(
      keys.getPreKeyBundle.bind(keys),
      { accountId: carol.accountId, deviceId: 1 },
      { metadata: sender.auth },
    );
    const carolExtra = await sender.party.startSession(carol.accountId, carolBundles[0], 3);
    const { bundles: daveBundles } = await unary(
      keys.getPreKeyBundle.bind(keys),
      { accountId: dave.accountId, deviceId: 1 },
      { metadata: sender.auth },
    );
    const dave1 = await sender.party.startSession(dave.accountId, daveBundles[0]);
    const daveStale = await sender.party.startSession(dave.accountId, daveBundles[0], 2);
    const { distributionId } = await group(sender, [bob, carol, dave]);
    const message = await sentMessage(
      sender,
      distributionId,
      [bobs[0], ...carols, carolExtra, dave1, daveStale],
      'mismatched',
    );
    const client = await anonymousClient(platform.gateway);
    const error = await outcome(
      sendMulti(client, request(message, xor([bob.accessKey, carol.accessKey, dave.accessKey]))),
    );
    expect(error?.code).toBe(status.FAILED_PRECONDITION);
    expect(error?.details).toMatch(/^device list mismatch for 3 of 3 recipients .*; nothing was sent$/);
    const trailer = MultiRecipientMismatch.decode(
      error!.metadata.get('sotto-multi-recipient-mismatch-bin')[0] as Buffer,
    );
    const byAccount = new Map(trailer.recipients.map((r) => [r.accountId, r.devices]));
    expect(byAccount.size).toBe(3);
    expect(byAccount.get(bob.accountId)).toEqual({
      missingDeviceIds: [2],
      extraDeviceIds: [],
      staleDeviceIds: [],
    });
    expect(byAccount.get(carol.accountId)).toEqual({
      missingDeviceIds: [],
      extraDeviceIds: [3],
      staleDeviceIds: [],
    });
    expect(byAccount.get(dave.accountId)).toEqual({
      missingDeviceIds: [],
      extraDeviceIds: [],
      staleDeviceIds: [2],
    });
    for (const device of [...bob.devices, ...carol.devices, ...dave.devices])
      expect(await drain(device)).toEqual([]);
    expect(await recordsOf(message)).toBe(0);
  });

  it('refuses more recipients than the limit in one line, and cuts off a flood from one address', async () => {
    const [alice, bob, carol, dave] = await Promise.all([person(), person(), person(), person()]);
    const sender = alice.devices[0];
    const recipients = [bob, carol, dave];
    const addresses = (await Promise.all(recipients.map((to) => sessionsTo(sender, to)))).flat();
    const { distributionId } = await group(sender, recipients);
    const three = await sentMessage(sender, distributionId, addresses, 'too many');
    const two = await sentMessage(sender, distributionId, addresses.slice(0, 2), 'two');

    const flooder = await anonymousClient(limited.grpc);
    const tooMany = await outcome(
      sendMulti(flooder, request(three, xor(recipients.map((r) => r.accessKey)))),
    );
    expect({ code: tooMany?.code, details: tooMany?.details }).toEqual({
      code: status.RESOURCE_EXHAUSTED,
      details: 'message: 3 recipients, over the limit of 2',
    });
    // Guesses spend the address's budget too.
    for (let i = 0; i < 2; i++) {
      expect((await outcome(sendMulti(flooder, request(two, randomBytes(16)))))?.code).toBe(
        status.UNAUTHENTICATED,
      );
    }
    const cut = await outcome(sendMulti(flooder, request(two, xor([bob.accessKey, carol.accessKey]))));
    expect(cut?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(cut?.details).toMatch(/^too many group messages sent from this address; retry in \d+ s$/);
    expect(await recordsOf(three)).toBe(0);
    expect(await recordsOf(two)).toBe(0);
  });

  it('cuts off a flood to one recipient from many addresses, counting only sends whose combined key was accepted', async () => {
    const [alice, bob, carol] = await Promise.all([person(), person(), person()]);
    const sender = alice.devices[0];
    const addresses = [...(await sessionsTo(sender, bob)), ...(await sessionsTo(sender, carol))];
    const { distributionId } = await group(sender, [bob, carol]);
    const key = xor([bob.accessKey, carol.accessKey]);
    for (let i = 0; i < 3; i++) {
      const stranger = await anonymousClient(limited.grpc);
      const message = await sentMessage(sender, distributionId, addresses, `guess ${i}`);
      expect((await outcome(sendMulti(stranger, request(message, randomBytes(16)))))?.code).toBe(
        status.UNAUTHENTICATED,
      );
    }
    for (const text of ['one', 'two']) {
      const message = await sentMessage(sender, distributionId, addresses, text);
      await sendMulti(await anonymousClient(limited.grpc), request(message, key));
    }
    const third = await sentMessage(sender, distributionId, addresses, 'three');
    const cut = await outcome(sendMulti(await anonymousClient(limited.grpc), request(third, key)));
    expect(cut?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(cut?.details).toMatch(/^too many group messages sent to one of the recipients; retry in \d+ s$/);
    const texts = await Promise.all(
      (await drain(bob.devices[0])).map(async (copy) => (await open(bob.devices[0], copy)).text),
    );
    expect(texts).toEqual(['one', 'two']);
  });

  it("reads only the recipients' access the gateway has not cached, in one directory call, and refuses a key changed since at once", async () => {
    const [alice, bob, carol, dave] = await Promise.all([person(), person(), person(), person()]);
    const sender = alice.devices[0];
    const [bobs, carols, daves] = [
      await sessionsTo(sender, bob),
      await sessionsTo(sender, carol),
      await sessionsTo(sender, dave),
    ];
    const { distributionId } = await group(sender, [bob, carol, dave]);
    const client = await anonymousClient(platform.gateway);
    /** How the gateway came by recipients' access, and the directory's reads of access, so far. */
    const counts = async () => {
      const gateway = await scrapeMetrics(platform.services.gateway);
      const directory = await scrapeMetrics(platform.services['prekey-directory']);
      const lookups = (source: string) =>
        gateway.get(`sotto_gateway_unidentified_access_lookups_total{source="${source}"}`) ?? 0;
      return {
        cache: lookups('cache'),
        directory: lookups('directory'),
        reads: [...directory]
          .filter(([name]) =>
            /^sotto_grpc_server_handled_total\{.*grpc_method="DirectoryController\.getUnidentifiedAccess(Batch)?"/.test(
              name,
            ),
          )
          .reduce((sum, [, value]) => sum + value, 0),
      };
    };
    const since = async (before: Awaited<ReturnType<typeof counts>>) => {
      const now = await counts();
      return {
        cache: now.cache - before.cache,
        directory: now.directory - before.directory,
        reads: now.reads - before.reads,
      };
    };

    // Bob and Carol: neither cached, both read in one call.
    let before = await counts();
    const toTwo = await sentMessage(sender, distributionId, [...bobs, ...carols], 'to two');
    await sendMulti(client, request(toTwo, xor([bob.accessKey, carol.accessKey])));
    expect(await since(before)).toEqual({ cache: 0, directory: 2, reads: 1 });

    // Dave joins: only his access is read.
    before = await counts();
    const toThree = await sentMessage(sender, distributionId, [...bobs, ...carols, ...daves], 'to three');
    await sendMulti(client, request(toThree, xor([bob.accessKey, carol.accessKey, dave.accessKey])));
    expect(await since(before)).toEqual({ cache: 2, directory: 1, reads: 1 });

    // Carol changes her key: a combined key made with her old one is refused at once, and only
    // her access is read again.
    const carolsNewKey = deriveUnidentifiedAccessKey(randomBytes(32));
    await unary(
      accounts.setUnidentifiedAccess.bind(accounts),
      { unidentifiedAccessKey: Buffer.from(carolsNewKey), unrestrictedUnidentifiedAccess: false },
      { metadata: carol.devices[0].auth },
    );
    before = await counts();
    const stale = await sentMessage(sender, distributionId, [...bobs, ...carols, ...daves], 'stale key');
    const refused = await outcome(
      sendMulti(client, request(stale, xor([bob.accessKey, carol.accessKey, dave.accessKey]))),
    );
    expect({ code: refused?.code, details: refused?.details }).toEqual({
      code: status.UNAUTHENTICATED,
      details: SEALED_SEND_REFUSED,
    });
    expect(await since(before)).toEqual({ cache: 2, directory: 1, reads: 1 });
    const fresh = await sentMessage(sender, distributionId, [...bobs, ...carols, ...daves], 'new key');
    await sendMulti(client, request(fresh, xor([bob.accessKey, carolsNewKey, dave.accessKey])));
    expect(await recordsOf(stale)).toBe(0);
    expect(await recordsOf(fresh)).toBe(1);
  });

  it('checks the combined key one account at a time against a directory without GetUnidentifiedAccessBatch', async () => {
    // A directory of the release before the batch read, mid-upgrade, behind a gateway of its own.
    const older = await startOlderService({
      identity: 'prekey-directory',
      definition: DirectoryServiceService,
      target: platform.services['prekey-directory'].grpc,
      caller: 'gateway',
      without: ['getUnidentifiedAccessBatch'],
    });
    const gateway = await startTestService('gateway', {
      PREKEY_DIRECTORY_ADDR: older.address,
      MESSAGE_RELAY_ADDR: platform.services['message-relay'].grpc,
      PRESENCE_ADDR: platform.services.presence.grpc,
      BACKUP_STORE_ADDR: platform.services['backup-store'].grpc,
      KEY_VAULT_ADDR: platform.services['key-vault'].grpc,
      // Every send reads the keys, so that the second shows the batch call is not tried again.
      UNIDENTIFIED_ACCESS_CACHE_TTL_MS: '0',
    });
    try {
      const [alice, bob, carol] = await Promise.all([person(), person(), person()]);
      const sender = alice.devices[0];
      const addresses = [...(await sessionsTo(sender, bob)), ...(await sessionsTo(sender, carol))];
      const { distributionId } = await group(sender, [bob, carol]);
      const wrong = await sentMessage(sender, distributionId, addresses, 'guessed');
      expect(
        (await outcome(sendMulti(await anonymousClient(gateway.grpc), request(wrong, bob.accessKey))))?.code,
      ).toBe(status.UNAUTHENTICATED);
      const right = await sentMessage(sender, distributionId, addresses, 'through the older directory');
      await sendMulti(
        await anonymousClient(gateway.grpc),
        request(right, xor([bob.accessKey, carol.accessKey])),
      );
      for (const member of [bob, carol]) {
        const copies = await drain(member.devices[0]);
        expect(
          await Promise.all(copies.map(async (copy) => (await open(member.devices[0], copy)).text)),
        ).toEqual(['through the older directory']);
      }
      // Each send asked for both keys one at a time: the batch call was refused once and not tried again.
      expect(older.calls.get('getUnidentifiedAccess')).toBe(4);
      expect(readFileSync(gateway.logFile, 'utf8')).toContain(
        'the directory has no GetUnidentifiedAccessBatch: reading access keys one account at a time',
      );
    } finally {
      await gateway.stop();
      await older.stop();
    }
  });
});
