import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { status } from '@grpc/grpc-js';
import { PublicKey } from '@signalapp/libsignal-client';
import { deriveUnidentifiedAccessKey, unary } from '@sotto/client-sdk';
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
import { GroupMessages, multiRecipientRequest as request, recordsOf, xor } from './testing/group-messages';

// A group message in one upload, played through the public API: the sender encrypts once for
// every device of every recipient (libsignal's multi-recipient sealed sender over a sender key),
// authorised by the XOR of the recipients' access keys; the relay logs it as one record and
// splits it per device; each device decrypts its copy and learns the sender from the certificate
// only. Garbage, wrong or partial keys, strangers, wrong device lists and floods change nothing.

const bytes = (data: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(data);
const freshAddress = (): string => `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;

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

  // People, groups and their messages, through the platform's gateway.
  let groups: GroupMessages;
  beforeAll(() => {
    groups = new GroupMessages(platform.gateway, trustRoot, pool);
    closers.push(groups);
  });

  async function anonymousClient(gateway: string, address = freshAddress()): Promise<MessagingServiceClient> {
    const proxy = await startTcpProxy(gateway, { from: address });
    closers.push({ close: () => void proxy.close() });
    const client = new MessagingServiceClient(proxy.address, gatewayCredentials());
    closers.push(client);
    return client;
  }
  const sendMulti = (client: MessagingServiceClient, sent: SendMultiRecipientRequest) =>
    unary(client.sendMultiRecipient.bind(client), sent);

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
    const [alice, bob, carol, dave] = await Promise.all([
      groups.person(),
      groups.person(2),
      groups.person(1),
      groups.person(2, true),
    ]);
    const sender = alice.devices[0];
    const recipients = [bob, carol, dave];
    const addresses = (await Promise.all(recipients.map((to) => groups.sessionsTo(sender, to)))).flat();
    const { distributionId } = await groups.group(sender, recipients);
    const message = await groups.sentMessage(sender, distributionId, addresses, 'hello group');

    const client = await anonymousClient(platform.gateway);
    const { serverTimestampMs } = await sendMulti(
      client,
      request(message, xor(recipients.map((r) => r.accessKey))),
    );
    expect(Number(serverTimestampMs)).toBeGreaterThan(0);

    const delivered = new Map<string, Envelope>();
    for (const device of recipients.flatMap((r) => r.devices)) {
      const [copy, ...more] = await groups.drain(device);
      expect(more).toEqual([]);
      expect(copy).toMatchObject({
        type: EnvelopeType.ENVELOPE_TYPE_UNIDENTIFIED_SENDER,
        sourceAccountId: '',
        sourceDeviceId: 0,
        destinationAccountId: device.accountId,
        destinationDeviceId: device.deviceId,
        ephemeral: false,
      });
      expect(await groups.open(device, copy)).toEqual({
        text: 'hello group',
        sender: alice.accountId,
        senderDevice: 1,
      });
      delivered.set(`${device.accountId}.${device.deviceId}`, copy);
    }
    // Every copy its own GUID; nothing for the sender.
    expect(new Set([...delivered.values()].map((copy) => copy.guid)).size).toBe(5);
    expect(await groups.drain(sender)).toEqual([]);

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
    const [alice, bob, carol] = await Promise.all([groups.person(), groups.person(2), groups.person()]);
    const sender = alice.devices[0];
    const addresses = [
      ...(await groups.sessionsTo(sender, bob)),
      ...(await groups.sessionsTo(sender, carol)),
    ];
    const { distributionId } = await groups.group(sender, [bob, carol]);
    const message = await groups.sentMessage(sender, distributionId, addresses, 'queued');
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
      expect((await groups.drain(device)).map((copy) => copy.guid)).toEqual([copyGuid]);
    }
  });

  it('answers a wrong key, a key that leaves a recipient out, and a stranger alike, and sends nothing', async () => {
    const [alice, bob, carol] = await Promise.all([groups.person(), groups.person(), groups.person()]);
    const sender = alice.devices[0];
    const addresses = [
      ...(await groups.sessionsTo(sender, bob)),
      ...(await groups.sessionsTo(sender, carol)),
    ];
    const { distributionId } = await groups.group(sender, [bob, carol]);
    const message = await groups.sentMessage(sender, distributionId, addresses, 'not for you');
    // A recipient that does not exist: a session under an account id nobody has.
    const ghost = randomUUID();
    const { bundles } = await unary(
      keys.getPreKeyBundle.bind(keys),
      { accountId: carol.accountId, deviceId: 1 },
      { metadata: sender.auth },
    );
    const ghostAddress = await sender.party.startSession(ghost, bundles[0]);
    const toGhost = await groups.sentMessage(
      sender,
      distributionId,
      [...addresses, ghostAddress],
      'to a ghost',
    );

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

    expect(await groups.drain(bob.devices[0])).toEqual([]);
    expect(await groups.drain(carol.devices[0])).toEqual([]);
    expect(await recordsOf(message)).toBe(0);
    expect(await recordsOf(toGhost)).toBe(0);
  });

  it('answers missing, extra and stale devices of several recipients in one trailer, and sends nothing', async () => {
    const [alice, bob, carol, dave] = await Promise.all([
      groups.person(),
      groups.person(2),
      groups.person(),
      groups.person(2),
    ]);
    const sender = alice.devices[0];
    const bobs = await groups.sessionsTo(sender, bob);
    const carols = await groups.sessionsTo(sender, carol);
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
    const { distributionId } = await groups.group(sender, [bob, carol, dave]);
    const message = await groups.sentMessage(
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
      expect(await groups.drain(device)).toEqual([]);
    expect(await recordsOf(message)).toBe(0);
  });

  it('refuses more recipients than the limit in one line, and cuts off a flood from one address', async () => {
    const [alice, bob, carol, dave] = await Promise.all([
      groups.person(),
      groups.person(),
      groups.person(),
      groups.person(),
    ]);
    const sender = alice.devices[0];
    const recipients = [bob, carol, dave];
    const addresses = (await Promise.all(recipients.map((to) => groups.sessionsTo(sender, to)))).flat();
    const { distributionId } = await groups.group(sender, recipients);
    const three = await groups.sentMessage(sender, distributionId, addresses, 'too many');
    const two = await groups.sentMessage(sender, distributionId, addresses.slice(0, 2), 'two');

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
    const [alice, bob, carol] = await Promise.all([groups.person(), groups.person(), groups.person()]);
    const sender = alice.devices[0];
    const addresses = [
      ...(await groups.sessionsTo(sender, bob)),
      ...(await groups.sessionsTo(sender, carol)),
    ];
    const { distributionId } = await groups.group(sender, [bob, carol]);
    const key = xor([bob.accessKey, carol.accessKey]);
    for (let i = 0; i < 3; i++) {
      const stranger = await anonymousClient(limited.grpc);
      const message = await groups.sentMessage(sender, distributionId, addresses, `guess ${i}`);
      expect((await outcome(sendMulti(stranger, request(message, randomBytes(16)))))?.code).toBe(
        status.UNAUTHENTICATED,
      );
    }
    for (const text of ['one', 'two']) {
      const message = await groups.sentMessage(sender, distributionId, addresses, text);
      await sendMulti(await anonymousClient(limited.grpc), request(message, key));
    }
    const third = await groups.sentMessage(sender, distributionId, addresses, 'three');
    const cut = await outcome(sendMulti(await anonymousClient(limited.grpc), request(third, key)));
    expect(cut?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(cut?.details).toMatch(/^too many group messages sent to one of the recipients; retry in \d+ s$/);
    const texts = await Promise.all(
      (await groups.drain(bob.devices[0])).map(
        async (copy) => (await groups.open(bob.devices[0], copy)).text,
      ),
    );
    expect(texts).toEqual(['one', 'two']);
  });

  it("reads only the recipients' access the gateway has not cached, in one directory call, and refuses a key changed since at once", async () => {
    const [alice, bob, carol, dave] = await Promise.all([
      groups.person(),
      groups.person(),
      groups.person(),
      groups.person(),
    ]);
    const sender = alice.devices[0];
    const [bobs, carols, daves] = [
      await groups.sessionsTo(sender, bob),
      await groups.sessionsTo(sender, carol),
      await groups.sessionsTo(sender, dave),
    ];
    const { distributionId } = await groups.group(sender, [bob, carol, dave]);
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
    const toTwo = await groups.sentMessage(sender, distributionId, [...bobs, ...carols], 'to two');
    await sendMulti(client, request(toTwo, xor([bob.accessKey, carol.accessKey])));
    expect(await since(before)).toEqual({ cache: 0, directory: 2, reads: 1 });

    // Dave joins: only his access is read.
    before = await counts();
    const toThree = await groups.sentMessage(
      sender,
      distributionId,
      [...bobs, ...carols, ...daves],
      'to three',
    );
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
    const stale = await groups.sentMessage(
      sender,
      distributionId,
      [...bobs, ...carols, ...daves],
      'stale key',
    );
    const refused = await outcome(
      sendMulti(client, request(stale, xor([bob.accessKey, carol.accessKey, dave.accessKey]))),
    );
    expect({ code: refused?.code, details: refused?.details }).toEqual({
      code: status.UNAUTHENTICATED,
      details: SEALED_SEND_REFUSED,
    });
    expect(await since(before)).toEqual({ cache: 2, directory: 1, reads: 1 });
    const fresh = await groups.sentMessage(sender, distributionId, [...bobs, ...carols, ...daves], 'new key');
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
      const [alice, bob, carol] = await Promise.all([groups.person(), groups.person(), groups.person()]);
      const sender = alice.devices[0];
      const addresses = [
        ...(await groups.sessionsTo(sender, bob)),
        ...(await groups.sessionsTo(sender, carol)),
      ];
      const { distributionId } = await groups.group(sender, [bob, carol]);
      const wrong = await groups.sentMessage(sender, distributionId, addresses, 'guessed');
      expect(
        (await outcome(sendMulti(await anonymousClient(gateway.grpc), request(wrong, bob.accessKey))))?.code,
      ).toBe(status.UNAUTHENTICATED);
      const right = await groups.sentMessage(
        sender,
        distributionId,
        addresses,
        'through the older directory',
      );
      await sendMulti(
        await anonymousClient(gateway.grpc),
        request(right, xor([bob.accessKey, carol.accessKey])),
      );
      for (const member of [bob, carol]) {
        const copies = await groups.drain(member.devices[0]);
        expect(
          await Promise.all(copies.map(async (copy) => (await groups.open(member.devices[0], copy)).text)),
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
