import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Metadata, status } from '@grpc/grpc-js';
import {
  ProtocolAddress,
  PublicKey,
  SenderCertificate,
  sealedSenderDecryptMessage,
  sealedSenderEncryptMessage,
} from '@signalapp/libsignal-client';
import {
  authorizationMetadata,
  deriveUnidentifiedAccessKey,
  generateDeviceKeys,
  publicDeviceKeys,
  unary,
} from '@sotto/client-sdk';
import { envelopesTopic } from '@sotto/contracts';
import {
  EnvelopeType,
  MismatchedDevices,
  type Envelope,
  type OutgoingEnvelope,
} from '@sotto/contracts/generated/sotto/common/v1/envelope';
import {
  AccountServiceClient,
  KeysServiceClient,
  MessagingServiceClient,
  type SendSealedRequest,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import {
  accountIdForms,
  gatewayCredentials,
  metricsText,
  outcome,
  redisHolding,
  startGatewayFor,
  startTcpProxy,
  startTestPlatform,
  topicRecords,
  type Platform,
  type TestService,
} from '@sotto/testing';
import { SEALED_SEND_REFUSED } from './messaging/sealed-sends';
import { Inbox } from './testing/public-api';
import { SignalParty } from './testing/signal-party';

// Sealed sender's unauthenticated Send, played through the public API: a stranger with the right
// access key reaches the recipient, who learns the sender only from the certificate; the server
// keeps no sender for it anywhere; a wrong, missing or foreign key and an unknown account look
// alike and store nothing; floods from one address or to one account are cut off.

interface Device {
  accountId: string;
  registrationId: number;
  auth: Metadata;
  party: SignalParty;
}

const bytes = (data: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(data);
/** A loopback address no other test uses, so per-address buckets in the shared Redis start full. */
const freshAddress = (): string => `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
const newName = (): string => `u_${randomUUID().replace(/-/g, '').slice(0, 12)}`;

describe('sealed sends, through the public API', () => {
  let platform: Platform & { databaseUrl: string };
  let trustRoot: PublicKey;
  let accounts: AccountServiceClient;
  let keys: KeysServiceClient;
  let messaging: MessagingServiceClient;
  // A gateway with the sealed-send limits on and small, in front of the same services.
  let limited: TestService;
  const closers: { close(): unknown }[] = [];

  beforeAll(async () => {
    platform = await startTestPlatform();
    trustRoot = PublicKey.deserialize(bytes(Buffer.from(platform.senderCertificateTrustRoot, 'base64')));
    accounts = new AccountServiceClient(platform.gateway, gatewayCredentials());
    keys = new KeysServiceClient(platform.gateway, gatewayCredentials());
    messaging = new MessagingServiceClient(platform.gateway, gatewayCredentials());
    closers.push(accounts, keys, messaging);
    limited = await startGatewayFor(platform, {
      SOTTO_RATE_LIMITS: 'on',
      // Periods of an hour: nothing refills while a test runs.
      RATE_LIMIT_SEALED_SEND_PER_SOURCE: '5/1h',
      RATE_LIMIT_SEALED_SEND_PER_DESTINATION: '4/1h',
    });
  });

  afterAll(async () => {
    for (const closer of closers) closer.close();
    await limited?.stop();
    await platform?.stop();
  });

  async function register(): Promise<Device> {
    const generated = generateDeviceKeys(5);
    const registered = await unary(accounts.register.bind(accounts), {
      username: newName(),
      identityKey: Buffer.from(generated.identity.publicKey.serialize()),
      device: publicDeviceKeys(generated),
    });
    return {
      accountId: registered.accountId,
      registrationId: generated.registrationId,
      auth: authorizationMetadata(registered),
      party: new SignalParty(generated, registered.accountId),
    };
  }

  /** Sets the account's access: a key derived from a new profile key, which is returned, and whether anyone may send. */
  async function allowSealed(device: Device, unrestricted = false): Promise<Uint8Array> {
    const accessKey = deriveUnidentifiedAccessKey(randomBytes(32));
    await unary(
      accounts.setUnidentifiedAccess.bind(accounts),
      { unidentifiedAccessKey: Buffer.from(accessKey), unrestrictedUnidentifiedAccess: unrestricted },
      { metadata: device.auth },
    );
    return accessKey;
  }

  /** What a sealed sender sends `to`'s device 1: `text` sealed under `from`'s certificate, through a session from `to`'s bundle. */
  async function sealedEnvelope(from: Device, to: Device, text: string): Promise<OutgoingEnvelope> {
    const { certificate } = await unary(
      accounts.getSenderCertificate.bind(accounts),
      {},
      { metadata: from.auth },
    );
    const address = ProtocolAddress.new(to.accountId, 1);
    if ((await from.party.sessions.getSession(address)) === null) {
      const { bundles } = await unary(
        keys.getPreKeyBundle.bind(keys),
        { accountId: to.accountId, deviceId: 1 },
        { metadata: from.auth },
      );
      await from.party.startSession(to.accountId, bundles[0]);
    }
    const content = await sealedSenderEncryptMessage(
      bytes(Buffer.from(text)),
      address,
      SenderCertificate.deserialize(bytes(certificate)),
      from.party.sessions,
      from.party.identities,
    );
    return {
      destinationDeviceId: 1,
      destinationRegistrationId: to.registrationId,
      type: EnvelopeType.ENVELOPE_TYPE_UNIDENTIFIED_SENDER,
      content: Buffer.from(content),
    };
  }

  /** Opaque bytes as a sealed envelope: for refusals, where nobody decrypts anything. */
  const opaque = (to: Device, marker: string, type = EnvelopeType.ENVELOPE_TYPE_UNIDENTIFIED_SENDER) => ({
    destinationDeviceId: 1,
    destinationRegistrationId: to.registrationId,
    type,
    content: Buffer.from(marker),
  });

  function request(
    to: { accountId: string },
    envelopes: OutgoingEnvelope[],
    accessKey: Uint8Array = new Uint8Array(),
  ): SendSealedRequest {
    return {
      destinationAccountId: to.accountId,
      clientTimestampMs: String(Date.now()),
      ephemeral: false,
      envelopes,
      unidentifiedAccessKey: Buffer.from(accessKey),
    };
  }

  /** SendSealed with no credential at all, from `address` (a loopback address of its own) to `gateway`. */
  async function sealedClient(gateway: string, address = freshAddress()): Promise<MessagingServiceClient> {
    const proxy = await startTcpProxy(gateway, { from: address });
    closers.push({ close: () => void proxy.close() });
    const client = new MessagingServiceClient(proxy.address, gatewayCredentials());
    closers.push(client);
    return client;
  }
  const sendSealed = (client: MessagingServiceClient, sealed: SendSealedRequest) =>
    unary(client.sendSealed.bind(client), sealed);

  /** What the device is handed on connecting, acknowledged, up to the empty-queue marker. */
  async function drain(device: Device): Promise<Envelope[]> {
    const inbox = new Inbox(messaging.connect(device.auth));
    try {
      return await inbox.untilEmpty();
    } finally {
      inbox.call.end();
    }
  }

  it('reaches the recipient, who learns the sender from the certificate; nothing the server keeps names the sender', async () => {
    const [alice, bob] = await Promise.all([register(), register()]);
    const accessKey = await allowSealed(bob);
    const envelope = await sealedEnvelope(alice, bob, 'sealed hello');
    const client = await sealedClient(platform.gateway);
    const { guids } = await sendSealed(client, request(bob, [envelope], accessKey));
    expect(guids).toHaveLength(1);

    const [delivered, ...more] = await drain(bob);
    expect(more).toEqual([]);
    expect(delivered).toMatchObject({
      guid: guids[0],
      type: EnvelopeType.ENVELOPE_TYPE_UNIDENTIFIED_SENDER,
      sourceAccountId: '',
      sourceDeviceId: 0,
      destinationAccountId: bob.accountId,
      destinationDeviceId: 1,
    });
    const opened = await sealedSenderDecryptMessage(
      bytes(delivered.content),
      trustRoot,
      Date.now(),
      null,
      bob.accountId,
      1,
      bob.party.sessions,
      bob.party.identities,
      bob.party.preKeys,
      bob.party.signedPreKeys,
      bob.party.kyberPreKeys,
    );
    expect(Buffer.from(opened.message()).toString()).toBe('sealed hello');
    expect([opened.senderUuid(), opened.deviceId()]).toEqual([alice.accountId, 1]);

    // Kafka: the record of this envelope, key, value and headers, holds nothing of Alice.
    const logged = (await topicRecords(envelopesTopic.TOPIC)).filter((record) =>
      record.value.includes(guids[0]),
    );
    expect(logged).toHaveLength(1);
    const record = logged[0];
    expect(envelopesTopic.decodeValue(record.value)).toMatchObject({
      sourceAccountId: '',
      sourceDeviceId: 0,
    });
    for (const form of accountIdForms(alice.accountId)) {
      const headers = Object.entries(record.headers).flatMap(([name, value]) => [Buffer.from(name), value]);
      expect([record.key, record.value, ...headers].some((part) => part.includes(form))).toBe(false);
    }
    // Redis: whatever still holds the envelope (Bob acknowledged it, so perhaps nothing) holds nothing of Alice.
    for (const piece of await redisHolding(guids[0])) {
      for (const form of accountIdForms(alice.accountId)) expect(piece.includes(form)).toBe(false);
    }
    // Nor do the relay's log and metrics: it never heard of Alice.
    const relay = platform.services['message-relay'];
    expect(readFileSync(relay.logFile, 'utf8')).not.toContain(alice.accountId);
    expect(await metricsText(relay)).not.toContain(alice.accountId);
    expect(await metricsText(platform.services.gateway)).not.toContain(alice.accountId);
  });

  it('keeps a sealed envelope in the mailbox with no sender until it is delivered', async () => {
    const [alice, bob] = await Promise.all([register(), register()]);
    const accessKey = await allowSealed(bob);
    const client = await sealedClient(platform.gateway);
    const { guids } = await sendSealed(
      client,
      request(bob, [await sealedEnvelope(alice, bob, 'queued')], accessKey),
    );
    // The relay routes from Kafka into the mailbox on its own time: wait until Redis holds it.
    let pieces: Buffer[] = [];
    for (const deadline = Date.now() + 30_000; pieces.length === 0 && Date.now() < deadline;) {
      pieces = await redisHolding(guids[0]);
      if (pieces.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(pieces.length).toBeGreaterThan(0);
    for (const piece of pieces) {
      for (const form of accountIdForms(alice.accountId)) expect(piece.includes(form)).toBe(false);
    }
    expect((await drain(bob)).map((envelope) => envelope.guid)).toEqual(guids);
  });

  it('answers a wrong, missing or foreign key and an unknown account alike, and stores nothing', async () => {
    const [bob, carol] = await Promise.all([register(), register()]);
    const bobsKey = await allowSealed(bob);
    const carolsKey = await allowSealed(carol);
    const client = await sealedClient(platform.gateway);
    const marker = `refused-${randomUUID()}`;
    const attempts = [
      request(bob, [opaque(bob, marker)], deriveUnidentifiedAccessKey(randomBytes(32))),
      request(bob, [opaque(bob, marker)]),
      request(bob, [opaque(bob, marker)], carolsKey),
      request({ accountId: randomUUID() }, [opaque(bob, marker)], bobsKey),
      request({ accountId: randomUUID() }, [opaque(bob, marker)]),
    ];
    for (const attempt of attempts) {
      const error = await outcome(sendSealed(client, attempt));
      expect({ code: error?.code, details: error?.details }).toEqual({
        code: status.UNAUTHENTICATED,
        details: SEALED_SEND_REFUSED,
      });
    }
    // A device credential does not stand in for the key either: the sender is never authenticated here.
    const withCredential = await outcome(
      unary(messaging.sendSealed.bind(messaging), request(bob, [opaque(bob, marker)]), {
        metadata: bob.auth,
      }),
    );
    expect(withCredential?.code).toBe(status.UNAUTHENTICATED);

    // The right key still works, and it is all Bob gets.
    const { guids } = await sendSealed(client, request(bob, [opaque(bob, 'let in')], bobsKey));
    expect((await drain(bob)).map((envelope) => envelope.guid)).toEqual(guids);
    expect((await topicRecords(envelopesTopic.TOPIC)).some((record) => record.value.includes(marker))).toBe(
      false,
    );
  });

  it('refuses envelopes that are not sealed, and malformed keys and destinations, naming the field', async () => {
    const bob = await register();
    const accessKey = await allowSealed(bob);
    const client = await sealedClient(platform.gateway);
    const marker = `malformed-${randomUUID()}`;
    const cases: [SendSealedRequest, string][] = [
      [
        request(
          bob,
          [opaque(bob, marker), opaque(bob, marker, EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT)],
          accessKey,
        ),
        'envelopes[1].type: SendSealed carries only ENVELOPE_TYPE_UNIDENTIFIED_SENDER',
      ],
      [
        request(bob, [opaque(bob, marker, EnvelopeType.ENVELOPE_TYPE_PREKEY_MESSAGE)], accessKey),
        'envelopes[0].type: SendSealed carries only ENVELOPE_TYPE_UNIDENTIFIED_SENDER',
      ],
      [
        request(bob, [opaque(bob, marker)], randomBytes(15)),
        'unidentified_access_key: must be 16 bytes, or empty for an account that accepts sealed messages from anyone',
      ],
      [
        request({ accountId: 'bob' }, [opaque(bob, marker)], accessKey),
        'destination_account_id: is not an account id',
      ],
      [request(bob, [], accessKey), 'envelopes: at least one is required'],
    ];
    for (const [sealed, details] of cases) {
      const error = await outcome(sendSealed(client, sealed));
      expect({ code: error?.code, details: error?.details }).toEqual({
        code: status.INVALID_ARGUMENT,
        details,
      });
    }
    expect(await drain(bob)).toEqual([]);
    expect((await topicRecords(envelopesTopic.TOPIC)).some((record) => record.value.includes(marker))).toBe(
      false,
    );
  });

  it("sets only the caller's own access: a bad key or no credential changes nothing, a new key replaces the old", async () => {
    const bob = await register();
    const first = await allowSealed(bob);
    const client = await sealedClient(platform.gateway);
    const set = (key: Uint8Array, metadata = bob.auth) =>
      outcome(
        unary(
          accounts.setUnidentifiedAccess.bind(accounts),
          { unidentifiedAccessKey: Buffer.from(key), unrestrictedUnidentifiedAccess: true },
          { metadata },
        ),
      );
    for (const length of [8, 15, 17, 32]) {
      const error = await set(randomBytes(length));
      expect({ code: error?.code, details: error?.details }).toEqual({
        code: status.INVALID_ARGUMENT,
        details: 'unidentified_access_key: must be 16 bytes, or empty to clear it',
      });
    }
    expect((await set(randomBytes(16), new Metadata()))?.code).toBe(status.UNAUTHENTICATED);
    // Still the first key, and still not open to anyone.
    const withoutKey = await outcome(sendSealed(client, request(bob, [opaque(bob, 'no key')])));
    expect(withoutKey?.code).toBe(status.UNAUTHENTICATED);
    const { guids } = await sendSealed(client, request(bob, [opaque(bob, 'first key')], first));

    const second = await allowSealed(bob);
    const stale = await outcome(sendSealed(client, request(bob, [opaque(bob, 'stale key')], first)));
    expect({ code: stale?.code, details: stale?.details }).toEqual({
      code: status.UNAUTHENTICATED,
      details: SEALED_SEND_REFUSED,
    });
    guids.push(...(await sendSealed(client, request(bob, [opaque(bob, 'second key')], second))).guids);
    expect((await drain(bob)).map((envelope) => envelope.guid)).toEqual(guids);
  });

  it('hands a sealed ephemeral envelope (a typing indicator) to an online device with no sender, and keeps nothing', async () => {
    const bob = await register();
    const accessKey = await allowSealed(bob);
    const inbox = new Inbox(messaging.connect(bob.auth));
    try {
      expect(await inbox.untilEmpty()).toEqual([]);
      const client = await sealedClient(platform.gateway);
      const marker = `typing-${randomUUID()}`;
      const { guids } = await sendSealed(client, {
        ...request(bob, [opaque(bob, marker)], accessKey),
        ephemeral: true,
      });
      // Other news (such as prekeys running low) may come first.
      let pushed = await inbox.next();
      while (pushed !== 'end' && pushed.envelope === undefined) pushed = await inbox.next();
      expect(pushed === 'end' ? pushed : pushed.envelope).toMatchObject({
        guid: guids[0],
        ephemeral: true,
        sourceAccountId: '',
        sourceDeviceId: 0,
        content: Buffer.from(marker),
      });
      expect((await topicRecords(envelopesTopic.TOPIC)).some((record) => record.value.includes(marker))).toBe(
        false,
      );
    } finally {
      inbox.call.end();
    }
  });

  it('answers a wrong device list with the lists, as Send does', async () => {
    const bob = await register();
    const accessKey = await allowSealed(bob);
    const client = await sealedClient(platform.gateway);
    const error = await outcome(
      sendSealed(
        client,
        request(bob, [opaque(bob, 'x'), { ...opaque(bob, 'y'), destinationDeviceId: 3 }], accessKey),
      ),
    );
    expect(error?.code).toBe(status.FAILED_PRECONDITION);
    expect(
      MismatchedDevices.decode(error!.metadata.get('sotto-mismatched-devices-bin')[0] as Buffer),
    ).toEqual({
      missingDeviceIds: [],
      extraDeviceIds: [3],
      staleDeviceIds: [],
    });
  });

  it('lets anyone send to an account that accepts sealed messages from anyone, with no key', async () => {
    const [alice, bob] = await Promise.all([register(), register()]);
    await allowSealed(bob, true);
    const client = await sealedClient(platform.gateway);
    const { guids } = await sendSealed(
      client,
      request(bob, [await sealedEnvelope(alice, bob, 'from anyone')]),
    );
    const [delivered] = await drain(bob);
    expect(delivered).toMatchObject({ guid: guids[0], sourceAccountId: '', sourceDeviceId: 0 });
    const opened = await sealedSenderDecryptMessage(
      bytes(delivered.content),
      trustRoot,
      Date.now(),
      null,
      bob.accountId,
      1,
      bob.party.sessions,
      bob.party.identities,
      bob.party.preKeys,
      bob.party.signedPreKeys,
      bob.party.kyberPreKeys,
    );
    expect([Buffer.from(opened.message()).toString(), opened.senderUuid()]).toEqual([
      'from anyone',
      alice.accountId,
    ]);
  });

  it('cuts off a flood from one address, guesses included, and leaves other addresses alone', async () => {
    const [bob, carol] = await Promise.all([register(), register()]);
    await allowSealed(bob);
    await allowSealed(carol, true);
    const address = freshAddress();
    const flooder = await sealedClient(limited.grpc, address);
    // Wrong keys spend the address's budget too: guessing is as limited as sending.
    for (let i = 0; i < 5; i++) {
      const error = await outcome(sendSealed(flooder, request(bob, [opaque(bob, 'guess')], randomBytes(16))));
      expect(error?.code).toBe(status.UNAUTHENTICATED);
    }
    const cut = await outcome(sendSealed(flooder, request(carol, [opaque(carol, 'one more')])));
    expect(cut?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(cut?.details).toMatch(/^too many sealed messages sent from this address; retry in \d+ s$/);
    expect(Number(cut?.metadata.get('retry-after-ms')[0])).toBeGreaterThan(0);
    // Someone else, elsewhere, still gets through.
    const other = await sealedClient(limited.grpc);
    await sendSealed(other, request(carol, [opaque(carol, 'elsewhere')]));
    expect((await drain(carol)).map((envelope) => Buffer.from(envelope.content).toString())).toEqual([
      'elsewhere',
    ]);
    // The address is counted in Redis, and named neither in the gateway's log nor in its metrics.
    expect(readFileSync(limited.logFile, 'utf8')).not.toContain(address);
    expect(await metricsText(limited)).not.toContain(address);
  });

  it('cuts off a flood to one account from many addresses, counting only sends whose key was accepted', async () => {
    const [bob, carol] = await Promise.all([register(), register()]);
    const accessKey = await allowSealed(bob);
    await allowSealed(carol, true);
    // Strangers without the key, from many addresses, spend nothing of Bob's budget.
    for (let i = 0; i < 6; i++) {
      const stranger = await sealedClient(limited.grpc);
      expect(
        (await outcome(sendSealed(stranger, request(bob, [opaque(bob, 'x')], randomBytes(16)))))?.code,
      ).toBe(status.UNAUTHENTICATED);
    }
    const sent: string[] = [];
    for (let i = 0; i < 4; i++) {
      const sender = await sealedClient(limited.grpc);
      sent.push(...(await sendSealed(sender, request(bob, [opaque(bob, `m${i}`)], accessKey))).guids);
    }
    const cut = await outcome(
      sendSealed(await sealedClient(limited.grpc), request(bob, [opaque(bob, 'm4')], accessKey)),
    );
    expect(cut?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(cut?.details).toMatch(/^too many sealed messages sent to this account; retry in \d+ s$/);
    // Another account is not affected.
    await sendSealed(await sealedClient(limited.grpc), request(carol, [opaque(carol, 'fine')]));
    expect((await drain(bob)).map((envelope) => envelope.guid)).toEqual(sent);
  });
});
