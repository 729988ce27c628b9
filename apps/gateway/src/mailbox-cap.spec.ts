import { randomBytes } from 'node:crypto';
import { status, type ServiceError } from '@grpc/grpc-js';
import { unary } from '@sotto/client-sdk';
import { RelayServiceClient } from '@sotto/contracts/generated/sotto/relay/v1/relay';
import { callerCredentials, startTestPlatform, type Platform } from '@sotto/testing';
import { PublicApi, type Device } from './testing/public-api';

const MAX_ENVELOPES = 5;
const MAX_BYTES = 4096;

/** A flood at an offline device, through the public API, against small mailbox caps. */
describe('a full mailbox', () => {
  let platform: Platform;
  let api: PublicApi;
  let relay: RelayServiceClient;

  beforeAll(async () => {
    platform = await startTestPlatform({
      'message-relay': { MAILBOX_MAX_ENVELOPES: String(MAX_ENVELOPES), MAILBOX_MAX_BYTES: String(MAX_BYTES) },
    });
    api = new PublicApi(platform.gateway);
    relay = new RelayServiceClient(platform.services['message-relay'].grpc, callerCredentials('gateway'));
  });

  afterAll(async () => {
    api?.close();
    relay?.close();
    await platform?.stop();
  });

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
});
