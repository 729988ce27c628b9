import { randomBytes } from 'node:crypto';
import { status, type ServiceError } from '@grpc/grpc-js';
import { unary } from '@sotto/client-sdk';
import { RelayServiceClient } from '@sotto/contracts/generated/sotto/relay/v1/relay';
import type { Redis } from 'ioredis';
import {
  callerCredentials,
  startPlatformOnPrivateRedis,
  testRedis,
  type Platform,
  type PrivateRedis,
} from '@sotto/testing';
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

  /** Waits until the device's mailbox holds `count` envelopes: routing into it is asynchronous. */
  async function routed(device: Device, count: number): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const { envelopes } = await unary(relay.readMailbox.bind(relay), {
        accountId: device.accountId,
        deviceId: 1,
        afterSequence: '0',
        limit: 100,
        maxBytes: 0,
      });
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
});
