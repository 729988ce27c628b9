import { randomBytes } from 'node:crypto';
import { status, type ServiceError } from '@grpc/grpc-js';
import { PublicKey } from '@signalapp/libsignal-client';
import { unary } from '@sotto/client-sdk';
import { RelayServiceClient, type QueuedEnvelope } from '@sotto/contracts/generated/sotto/relay/v1/relay';
import type { Redis } from 'ioredis';
import {
  callerCredentials,
  outcome,
  startPlatformOnPrivateRedis,
  testRedis,
  type Platform,
  type PrivateRedis,
} from '@sotto/testing';
import { GroupMessages, multiRecipientRequest, recordsOf, xor } from './testing/group-messages';
import { PublicApi, type Device } from './testing/public-api';

const MAX_ENVELOPES = 5;
const MAX_BYTES = 4096;

/**
 * A flood at an offline device, through the public API, against small mailbox caps. The relay
 * trusts its estimate of a mailbox's room for a minute here, not a second, so every check below
 * half a cap is made against it: the caps must hold all the same.
 */
describe('a full mailbox', () => {
  let redis: PrivateRedis;
  let admin: Redis;
  let platform: Platform;
  let api: PublicApi;
  let relay: RelayServiceClient;

  beforeAll(async () => {
    // A Redis of this test's own: its command counts are this platform's alone.
    ({ platform, redis } = await startPlatformOnPrivateRedis({
      'message-relay': {
        MAILBOX_MAX_ENVELOPES: String(MAX_ENVELOPES),
        MAILBOX_MAX_BYTES: String(MAX_BYTES),
        MAILBOX_ROOM_CACHE_MS: '60000',
      },
    }));
    admin = testRedis(redis.url);
    api = new PublicApi(platform.gateway);
    relay = new RelayServiceClient(platform.services['message-relay'].grpc, callerCredentials('gateway'));
  });

  afterAll(async () => {
    api?.close();
    relay?.close();
    await platform?.stop();
    admin?.disconnect();
    await redis?.stop();
  });

  /** Mailbox usage reads so far: ZCARD runs only in the relay's usage script. */
  async function usageReads(): Promise<number> {
    const stats = await admin.info('commandstats');
    return Number(/^cmdstat_zcard:calls=(\d+)/m.exec(stats)?.[1] ?? 0);
  }

  /** What the device's mailbox (device 1's) holds now, read from the relay without delivering it. */
  async function mailbox(device: Device): Promise<QueuedEnvelope[]> {
    const { envelopes } = await unary(relay.readMailbox.bind(relay), {
      accountId: device.accountId,
      deviceId: 1,
      afterSequence: '0',
      limit: 100,
      maxBytes: 0,
    });
    return envelopes;
  }

  /** Waits until the device's mailbox holds `count` envelopes: routing into it is asynchronous. */
  async function routed(device: Device, count: number): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const envelopes = await mailbox(device);
      if (envelopes.length === count) return;
      if (Date.now() > deadline) throw new Error(`the mailbox holds ${envelopes.length}, not ${count}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  const refusal = (promise: Promise<unknown>) =>
    promise.then(
      () => 'accepted',
      (error: unknown) => error,
    );

  it('refuses a flood past its envelope cap with RESOURCE_EXHAUSTED, and loses nothing it accepted', async () => {
    const [mallory, bob] = await Promise.all([api.register(), api.register()]);
    const accepted: string[] = [];
    for (let i = 0; i < MAX_ENVELOPES; i++) {
      await api.send(mallory, bob, `spam ${i}`);
      accepted.push(`spam ${i}`);
    }
    await routed(bob, MAX_ENVELOPES);

    const refused = await refusal(api.send(mallory, bob, 'one too many'));
    expect(refused).toMatchObject({ code: status.RESOURCE_EXHAUSTED });
    expect((refused as ServiceError).metadata.get('sotto-refusal')).toEqual(['mailbox-full']);
    expect((refused as Error).message).toMatch(
      /mailbox full: device 1 of the destination holds 5 undelivered envelopes .* at its cap of 5 envelopes; nothing was sent/,
    );
    // Anyone else is refused too: the cap is the mailbox's, not the sender's.
    const alice = await api.register();
    expect(await refusal(api.send(alice, bob, 'hello'))).toMatchObject({ code: status.RESOURCE_EXHAUSTED });

    // Bob reads his mail: all of it, in order, and nothing refused slipped in.
    expect(await api.drain(bob)).toEqual(accepted);
    await routed(bob, 0);
    // Room again: the next message goes through and arrives.
    await api.send(alice, bob, 'hello again');
    await routed(bob, 1);
    expect(await api.drain(bob)).toEqual(['hello again']);
  });

  it('refuses an envelope that would take the mailbox past its byte cap, and still takes a smaller one', async () => {
    const [mallory, bob] = await Promise.all([api.register(), api.register()]);
    const big = randomBytes(1500).toString('base64').slice(0, 1500);
    await api.send(mallory, bob, big);
    await api.send(mallory, bob, big);
    await routed(bob, 2);
    const refused = await refusal(api.send(mallory, bob, big));
    expect(refused).toMatchObject({ code: status.RESOURCE_EXHAUSTED });
    expect((refused as Error).message).toMatch(/at its cap of 4096 bytes/);
    await api.send(mallory, bob, 'small');
    await routed(bob, 3);
    expect(await api.drain(bob)).toEqual([big, big, 'small']);
  });

  it('asks Redis about a mailbox far below its caps once, then counts on its estimate until half a cap', async () => {
    const [alice, bob] = await Promise.all([api.register(), api.register()]);
    const reads: number[] = [await usageReads()];
    for (const text of ['one', 'two', 'three']) {
      await api.send(alice, bob, text);
      reads.push(await usageReads());
    }
    // The first Send asks; the second (2 of 5 with it) goes on the estimate; the third (3 of 5) asks.
    expect(reads.slice(1).map((count, index) => count - (reads[index] ?? 0))).toEqual([1, 0, 1]);
    await routed(bob, 3);
    expect(await api.drain(bob)).toEqual(['one', 'two', 'three']);
  });

  it('refuses a group message whole while one member’s mailbox is full, naming that member, and delivers it once to each after that member reads', async () => {
    const trustRoot = PublicKey.deserialize(
      new Uint8Array(Buffer.from(platform.senderCertificateTrustRoot, 'base64')),
    );
    const groups = new GroupMessages(platform.gateway, trustRoot);
    try {
      const [alice, bob, carol, mallory] = await Promise.all([
        groups.person(),
        groups.person(),
        groups.person(),
        api.register(),
      ]);
      const [sender, bobs, carols] = [alice.devices[0], bob.devices[0], carol.devices[0]];
      // Bob's mailbox filled to its cap by ordinary sends; Carol's empty.
      const flood: string[] = [];
      for (let i = 0; i < MAX_ENVELOPES; i++) {
        await api.send(mallory, bobs, `spam ${i}`);
        flood.push(`spam ${i}`);
      }
      await routed(bobs, MAX_ENVELOPES);
      const held = (await mailbox(bobs)).map((queued) => queued.envelope?.guid);

      const addresses = [
        ...(await groups.sessionsTo(sender, bob)),
        ...(await groups.sessionsTo(sender, carol)),
      ];
      const { distributionId } = await groups.group(sender, [bob, carol]);
      const message = await groups.sentMessage(sender, distributionId, addresses, 'to the group');
      const upload = multiRecipientRequest(message, xor([bob.accessKey, carol.accessKey]));
      const sendMulti = () => unary(groups.messaging.sendMultiRecipient.bind(groups.messaging), upload);

      // Refused, naming Bob's device as the full one, and again while it stays full.
      for (let attempt = 1; attempt <= 2; attempt++) {
        const refused = await outcome(sendMulti());
        expect({ code: refused?.code, details: refused?.details }).toEqual({
          code: status.RESOURCE_EXHAUSTED,
          details: expect.stringMatching(
            new RegExp(
              `^mailbox full: device 1 of recipient ${bob.accountId} holds ${MAX_ENVELOPES} undelivered envelopes \\(\\d+ bytes\\), at its cap of ${MAX_ENVELOPES} envelopes; nothing was sent$`,
            ),
          ) as string,
        });
        expect(refused?.metadata.get('sotto-refusal')).toEqual(['mailbox-full']);
      }
      // Nothing half-sent: no record in Kafka, Carol has nothing, Bob's mailbox is what it was.
      expect(await recordsOf(message)).toBe(0);
      expect(await mailbox(carols)).toEqual([]);
      expect(await groups.drain(carols)).toEqual([]);
      expect((await mailbox(bobs)).map((queued) => queued.envelope?.guid)).toEqual(held);

      // Bob reads his mail, all of it and in order; the same upload is then accepted, one copy each.
      expect(await api.drain(bobs)).toEqual(flood);
      await routed(bobs, 0);
      await sendMulti();
      expect(await recordsOf(message)).toBe(1);
      for (const device of [bobs, carols]) {
        await routed(device, 1);
        const copies = await groups.drain(device);
        expect(copies).toHaveLength(1);
        expect(await groups.open(device, copies[0])).toEqual({
          text: 'to the group',
          sender: alice.accountId,
          senderDevice: 1,
        });
      }
    } finally {
      groups.close();
    }
  });
});
