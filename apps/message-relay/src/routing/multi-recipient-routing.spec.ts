import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import {
  IdentityKeyPair,
  ProtocolAddress,
  SenderCertificate,
  SenderKeyDistributionMessage,
  ServerCertificate,
  UnidentifiedSenderMessageContent,
  groupEncrypt,
  processPreKeyBundle,
  sealedSenderMultiRecipientEncrypt,
} from '@signalapp/libsignal-client';
import { preKeyBundle, unary } from '@sotto/client-sdk';
import { multiRecipientTopic } from '@sotto/contracts';
import { EnvelopeType } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import type { DirectoryServiceClient } from '@sotto/contracts/generated/sotto/directory/v1/directory';
import { RelayServiceClient, type QueuedEnvelope } from '@sotto/contracts/generated/sotto/relay/v1/relay';
import {
  callerCredentials,
  freePort,
  MemoryIdentityStore,
  MemorySenderKeyStore,
  MemorySessionStore,
  outcome,
  relaySendRequest,
  topicRecords,
  type TestCluster,
} from '@sotto/testing';
import {
  mailboxHolding,
  mailboxOf,
  registerAtDirectory,
  startRelayNeighbours,
  type DirectoryAccount,
} from '../testing/relay-neighbours';

// The relay's side of a group message in one upload, in the crash tests' way: the relay accepts
// one record for every copy, and a relay SIGKILLed while routing it, before the mailbox writes
// or before the offset commit, leaves every copy delivered exactly once after a restart. A copy
// for a full mailbox refuses the whole message, as Send refuses: every copy or none.

const bytes = (data: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(data);

describe('multi-recipient sends in the relay', () => {
  let cluster: TestCluster;
  let directory: DirectoryServiceClient;

  beforeAll(async () => {
    ({ cluster, directory } = await startRelayNeighbours());
  });

  afterAll(async () => {
    directory?.close();
    await cluster?.stop();
  });

  const account = (): Promise<DirectoryAccount> => registerAtDirectory(directory);

  async function relay(env: Record<string, string> = {}): Promise<{
    client: RelayServiceClient;
    group: string;
    exited: Promise<number | string>;
    stop: () => Promise<unknown>;
  }> {
    const group = env['KAFKA_CONSUMER_GROUP'] ?? `relay-test-${randomUUID()}`;
    const service = await cluster.start('message-relay', {
      KAFKA_CONSUMER_GROUP: group,
      KAFKA_SESSION_TIMEOUT_MS: '6000',
      // A port of its own: a relay of an earlier test may still hold the cluster's.
      GRPC_ADDR: `127.0.0.1:${await freePort()}`,
      ...env,
    });
    return {
      client: new RelayServiceClient(service.grpc, callerCredentials('gateway')),
      group,
      exited: service.exited,
      stop: () => service.stop(),
    };
  }

  /** libsignal's copy of `message` for `accountId`, as routing puts it into each of its devices' mailboxes. */
  function copyFor(message: Buffer, accountId: string): Buffer {
    const parsed = multiRecipientTopic.parseSentMessage(message);
    if (!parsed.ok) throw new Error(parsed.reason);
    const recipient = parsed.value.recipients.find((r) => r.accountId === accountId);
    if (recipient === undefined) throw new Error(`${accountId} is not a recipient`);
    return Buffer.from(parsed.value.message.messageForRecipient(recipient.recipient));
  }

  /** A real SentMessage from a sender (with a certificate of its own making) to device 1 of each of `recipients`. */
  async function sentMessage(recipients: string[], text: string): Promise<Buffer> {
    const identity = IdentityKeyPair.generate();
    const sessions = new MemorySessionStore();
    const identities = new MemoryIdentityStore(identity.privateKey, 1, 'any');
    const addresses: ProtocolAddress[] = [];
    const self = ProtocolAddress.new(randomUUID(), 1);
    for (const accountId of recipients) {
      const { bundles } = await unary(directory.getPreKeyBundle.bind(directory), {
        requesterAccountId: accountId,
        targetAccountId: accountId,
        targetDeviceId: 1,
      });
      const address = ProtocolAddress.new(accountId, 1);
      await processPreKeyBundle(preKeyBundle(bundles[0]), address, self, sessions, identities);
      addresses.push(address);
    }
    const trustRoot = IdentityKeyPair.generate();
    const server = IdentityKeyPair.generate();
    const serverCertificate = ServerCertificate.new(1, server.publicKey, trustRoot.privateKey);
    const certificate = SenderCertificate.new(
      self.name(),
      null,
      1,
      identity.publicKey,
      Date.now() + 60_000,
      serverCertificate,
      server.privateKey,
    );
    const senderKeys = new MemorySenderKeyStore();
    const distributionId = randomUUID();
    await SenderKeyDistributionMessage.create(self, distributionId, senderKeys);
    const ciphertext = await groupEncrypt(self, distributionId, senderKeys, bytes(Buffer.from(text)));
    const content = UnidentifiedSenderMessageContent.new(ciphertext, certificate, 0, null);
    return Buffer.from(await sealedSenderMultiRecipientEncrypt(content, addresses, identities, sessions));
  }

  it.each(['crash-before-mailbox', 'crash-before-commit'])(
    'delivers every copy exactly once when the relay is SIGKILLed at %s and restarted',
    async (point) => {
      const recipients = (await Promise.all([account(), account(), account()])).map((who) => who.accountId);
      const messages = [await sentMessage(recipients, 'first'), await sentMessage(recipients, 'second')];
      const doomed = await relay({ SOTTO_FAULT_INJECTION: point });
      try {
        // Kafka acknowledged each before the relay answered.
        for (const message of messages) {
          await unary(doomed.client.sendMultiRecipient.bind(doomed.client), {
            message,
            clientTimestampMs: String(Date.now()),
            ephemeral: false,
          });
        }
      } finally {
        doomed.client.close();
      }
      // It dies routing the first record, after answering: only then does another take its place.
      expect(await doomed.exited).toBe('SIGKILL');
      const replacement = await relay({ KAFKA_CONSUMER_GROUP: doomed.group });
      try {
        for (const accountId of recipients) {
          const queued = await mailboxHolding(replacement.client, accountId, 2);
          // Give a redelivered record the chance to show up twice before counting.
          await new Promise((resolve) => setTimeout(resolve, 1_000));
          const again = await mailboxHolding(replacement.client, accountId, 2);
          expect(again.map((item) => item.envelope!.guid)).toEqual(queued.map((item) => item.envelope!.guid));
          expect(again).toHaveLength(2);
          for (const item of again) {
            expect(item.envelope).toMatchObject({
              type: EnvelopeType.ENVELOPE_TYPE_UNIDENTIFIED_SENDER,
              sourceAccountId: '',
              sourceDeviceId: 0,
              destinationAccountId: accountId,
              destinationDeviceId: 1,
            });
          }
          // Each copy is libsignal's copy of one of the two messages for this recipient, in order.
          expect(again.map((item) => Buffer.from(item.envelope!.content))).toEqual(
            messages.map((message) => copyFor(message, accountId)),
          );
        }
      } finally {
        replacement.client.close();
        await replacement.stop();
      }
    },
  );

  it('refuses a message whole while one recipient’s mailbox is full, and delivers it once to each when sent again with room', async () => {
    const cap = 3;
    const [sender, bob, carol, dave] = await Promise.all([account(), account(), account(), account()]);
    const recipients = [bob, carol, dave];
    const { client, stop } = await relay({ MAILBOX_MAX_ENVELOPES: String(cap) });
    try {
      const send = (to: DirectoryAccount, text: string) =>
        unary(client.send.bind(client), relaySendRequest(sender, to, text));
      const guids = (queued: QueuedEnvelope[]) => queued.map((item) => item.envelope!.guid);
      // Bob and Dave hold a message each; Carol's mailbox is at its cap.
      await send(bob, 'for bob');
      await send(dave, 'for dave');
      for (let i = 0; i < cap; i++) await send(carol, `for carol ${i}`);
      const held = new Map<DirectoryAccount, string[]>();
      for (const [who, count] of [
        [bob, 1],
        [carol, cap],
        [dave, 1],
      ] as const) {
        held.set(who, guids(await mailboxHolding(client, who.accountId, count)));
        expect(held.get(who)).toHaveLength(count);
      }

      const message = await sentMessage(
        recipients.map((who) => who.accountId),
        'to the group',
      );
      const request = { message, clientTimestampMs: String(Date.now()), ephemeral: false };
      const logged = async () =>
        (await topicRecords(multiRecipientTopic.TOPIC)).filter((record) =>
          Buffer.from(multiRecipientTopic.decodeValue(record.value).message).equals(message),
        ).length;
      // Refused, naming whose mailbox is full, and refused again while it stays full.
      for (let attempt = 1; attempt <= 2; attempt++) {
        const refused = await outcome(unary(client.sendMultiRecipient.bind(client), request));
        expect(refused).toMatchObject({
          code: status.RESOURCE_EXHAUSTED,
          details: expect.stringMatching(
            new RegExp(
              `^mailbox full: device 1 of recipient ${carol.accountId} holds ${cap} undelivered envelopes \\(\\d+ bytes\\), at its cap of ${cap} envelopes; nothing was sent$`,
            ),
          ) as string,
        });
        expect(refused?.metadata.get('sotto-refusal')).toEqual(['mailbox-full']);
      }
      // Nothing half-written: Kafka has no record of it, and every mailbox holds what it held, nothing dropped.
      expect(await logged()).toBe(0);
      for (const who of recipients)
        expect(guids(await mailboxOf(client, who.accountId))).toEqual(held.get(who));

      // Carol reads one of hers: room for one. The same message sent again is one record, one copy for each.
      const [read, ...unread] = held.get(carol)!;
      expect(
        await unary(client.ack.bind(client), { accountId: carol.accountId, deviceId: 1, guids: [read] }),
      ).toEqual({ deleted: 1 });
      held.set(carol, unread);
      await unary(client.sendMultiRecipient.bind(client), request);
      expect(await logged()).toBe(1);
      for (const who of recipients) {
        const before = held.get(who)!;
        const queued = await mailboxHolding(client, who.accountId, before.length + 1);
        expect(guids(queued).slice(0, before.length)).toEqual(before);
        expect(queued).toHaveLength(before.length + 1);
        const copy = queued[before.length];
        expect(copy.envelope).toMatchObject({
          type: EnvelopeType.ENVELOPE_TYPE_UNIDENTIFIED_SENDER,
          sourceAccountId: '',
          destinationAccountId: who.accountId,
          destinationDeviceId: 1,
        });
        expect(Buffer.from(copy.envelope!.content)).toEqual(copyFor(message, who.accountId));
      }
    } finally {
      client.close();
      await stop();
    }
  });

  it('refuses garbage, naming the field, and accepts nothing', async () => {
    const { client, stop } = await relay();
    try {
      await expect(
        unary(client.sendMultiRecipient.bind(client), {
          message: Buffer.from('not a message'),
          clientTimestampMs: String(Date.now()),
          ephemeral: false,
        }),
      ).rejects.toMatchObject({ details: 'message: is not a sealed-sender multi-recipient message' });
    } finally {
      client.close();
      await stop();
    }
  });
});
