import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { unary } from '@sotto/client-sdk';
import { gatewayEvents, presenceRegistry } from '@sotto/contracts';
import { EnvelopeType } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import {
  MessagingServiceClient,
  type ConnectResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { RelayServiceClient } from '@sotto/contracts/generated/sotto/relay/v1/relay';
import {
  callerCredentials,
  gatewayCredentials,
  metricsUntil,
  metricUntil,
  metricValue,
  relaySendRequest,
  scrapeMetrics,
  startGatewayFor,
  startTcpProxy,
  startTestPlatform,
  testRedis,
  type Platform,
  type TcpProxy,
  type TestService,
} from '@sotto/testing';
import { memoryOf } from './testing/gateway-metrics';
import { Inbox, PublicApi, type Device } from '../testing/public-api';

/** The gateway's default DELIVERY_MAX_IN_FLIGHT and DELIVERY_MAX_IN_FLIGHT_BYTES. */
const MAX_IN_FLIGHT = 256;
const MAX_IN_FLIGHT_BYTES = 1024 * 1024;

/** Until the device's stream waits (for acknowledgements or for the device to read) with its backlog in the mailbox. */
async function heldBack(service: TestService): Promise<void> {
  await metricsUntil(
    service,
    'one stream waiting',
    (samples) =>
      (samples.get('sotto_gateway_delivery_streams_waiting{reason="acknowledgements"}') ?? 0) +
        (samples.get('sotto_gateway_delivery_streams_waiting{reason="client_reading"}') ?? 0) ===
      1,
  );
}

describe('delivery streams: flow control, bounded memory and drains that fail', () => {
  let platform: Platform;
  // A gateway for one device at a time, so its delivery metrics are that device's.
  let quiet: TestService;
  // A gateway reaching the relay through a proxy the tests can cut, retrying failed drains quickly.
  let cutOff: TestService;
  let relayProxy: TcpProxy;
  let relay: RelayServiceClient;
  let api: PublicApi;
  let publicMessaging: MessagingServiceClient;
  const clients: { close(): void }[] = [];

  beforeAll(async () => {
    platform = await startTestPlatform();
    relayProxy = await startTcpProxy(platform.services['message-relay'].grpc);
    [quiet, cutOff] = await Promise.all([
      startGatewayFor(platform),
      startGatewayFor(platform, {
        MESSAGE_RELAY_ADDR: relayProxy.address,
        DELIVERY_DRAIN_RETRY_MIN_MS: '200',
        DELIVERY_DRAIN_RETRY_MAX_MS: '1000',
      }),
    ]);
    // The backlogs are queued as the gateway would queue them: the relay's own Send.
    relay = new RelayServiceClient(platform.services['message-relay'].grpc, callerCredentials('gateway'));
    api = new PublicApi(platform.gateway);
    publicMessaging = api.messaging;
    clients.push(relay, api);
  }, 180_000);

  afterAll(async () => {
    clients.forEach((client) => client.close());
    await Promise.all([quiet?.stop(), cutOff?.stop()]);
    await relayProxy?.close();
    await platform?.stop();
  });

  // Registered with 20 one-time keys, enough that Connect does not ask for more.
  const register = (): Promise<Device> => api.register();

  const connectAt = (gateway: TestService, device: Device): Inbox => {
    const client = new MessagingServiceClient(gateway.grpc, gatewayCredentials());
    clients.push(client);
    return new Inbox(client.connect(device.auth), { reading: false });
  };

  /** Queues `count` envelopes of `bytes` each from one device to another, `concurrency` Sends at a time. */
  async function queue(from: Device, to: Device, count: number, bytes: number, concurrency = 32) {
    const guids: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < count) {
          next += 1;
          const sent = await unary(
            relay.send.bind(relay),
            relaySendRequest(from, to, Buffer.alloc(bytes, next % 256)),
          );
          guids.push(...sent.guids);
        }
      }),
    );
    return guids;
  }

  /** How many envelopes the device's mailbox holds, read as the gateway reads it. */
  async function queued(device: Device): Promise<number> {
    let count = 0;
    let after = '0';
    for (;;) {
      const page = await unary(relay.readMailbox.bind(relay), {
        accountId: device.accountId,
        deviceId: 1,
        afterSequence: after,
        limit: 500,
        maxBytes: 0,
      });
      count += page.envelopes.length;
      after = page.envelopes[page.envelopes.length - 1]?.sequence ?? after;
      if (page.drained || page.envelopes.length === 0) return count;
    }
  }

  async function routed(device: Device, count: number): Promise<void> {
    const deadline = Date.now() + 120_000;
    while ((await queued(device)) < count) {
      if (Date.now() > deadline) throw new Error(`fewer than ${count} envelopes routed after 120 s`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /**
   * Reads and acknowledges (up to 50 at a time) until `count` envelopes came; returns
   * their GUIDs, in order. (QueueEmpty came first: the device connected before its mail.)
   */
  async function readAll(inbox: Inbox, count: number): Promise<string[]> {
    const received: string[] = [];
    let unacknowledged: string[] = [];
    while (received.length < count) {
      const message = await inbox.next();
      if (message === 'end') throw new Error(`stream ended: ${inbox.error?.details ?? 'no error'}`);
      if (!message.envelope) continue;
      received.push(message.envelope.guid);
      unacknowledged.push(message.envelope.guid);
      // As a client does: in batches while more is at hand, and whatever it has before waiting.
      if (unacknowledged.length === 50 || inbox.buffered === 0) {
        inbox.ack(unacknowledged);
        unacknowledged = [];
      }
    }
    if (unacknowledged.length > 0) inbox.ack(unacknowledged);
    return received;
  }

  it('pushes mail to a device that keeps up, reading no mailbox; a push that does not follow on makes it read the mailbox instead', async () => {
    const [alice, bob] = await Promise.all([register(), register()]);
    const inbox = connectAt(quiet, bob).read();
    expect(await inbox.next()).toEqual({ queueEmpty: {} });
    const readBefore = await metricValue(quiet, 'sotto_gateway_mailbox_envelopes_read_total');
    const pushedBefore = await metricValue(quiet, 'sotto_gateway_envelopes_pushed_total');

    // One at a time: each is routed alone and pushed with its nudge.
    const [sent, received] = await Promise.all([queue(alice, bob, 20, 100, 1), readAll(inbox, 20)]);
    expect(received).toEqual(sent);
    const pushed = (await metricValue(quiet, 'sotto_gateway_envelopes_pushed_total')) - pushedBefore;
    const read = (await metricValue(quiet, 'sotto_gateway_mailbox_envelopes_read_total')) - readBefore;
    expect(pushed + read).toBe(20);
    // The first may come while the stream is still busy after its opening drain (asking for prekeys).
    expect(pushed).toBeGreaterThanOrEqual(19);

    // Events on the gateway's channel that do not follow on from what the stream wrote: one far ahead
    // (as if pushes were missed) and one it already wrote (a batch routed again). Neither is written as
    // it is: the first makes the stream read its mailbox, which holds nothing new yet.
    const redis = testRedis();
    try {
      const holder = presenceRegistry.decodeHolder(
        await redis.get(presenceRegistry.key({ accountId: bob.accountId, deviceId: 1 })),
      );
      expect(holder).toBeDefined();
      const push = (sequence: string, content: string) =>
        redis.publish(
          gatewayEvents.channel(holder?.gatewayId ?? ''),
          gatewayEvents.encode({
            device: { accountId: bob.accountId, deviceId: 1 },
            streamId: holder?.streamId ?? '',
            newMail: {
              mail: [
                {
                  sequence,
                  envelope: {
                    guid: randomUUID(),
                    type: EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT,
                    sourceAccountId: alice.accountId,
                    sourceDeviceId: 1,
                    destinationAccountId: bob.accountId,
                    destinationDeviceId: 1,
                    content: Buffer.from(content),
                    serverTimestampMs: String(Date.now()),
                    clientTimestampMs: String(Date.now()),
                    ephemeral: false,
                  },
                },
              ],
            },
          }),
        );
      expect(await push('1000000', 'far ahead')).toBe(1);
      expect(await push('1', 'already written')).toBe(1);
    } finally {
      redis.disconnect();
    }
    // The next thing the device gets is the next real message (its push comes after those on the channel).
    const [[next]] = await Promise.all([queue(alice, bob, 1, 100, 1)]);
    const message = await inbox.next();
    expect(message).not.toBe('end');
    expect((message as ConnectResponse).envelope?.guid).toBe(next);
    inbox.ack([next ?? '']);
    inbox.call.end();
  });

  it('holds at most 256 envelopes in the gateway for a device that reads nothing, while 10,000 wait for it; all come once it reads', async () => {
    const [alice, bob] = await Promise.all([register(), register()]);
    const before = await scrapeMetrics(quiet);
    // Taken from mailboxes for streams of this gateway: pushed by the relay or read.
    const taken = async (): Promise<number> =>
      (await metricValue(quiet, 'sotto_gateway_mailbox_envelopes_read_total')) +
      (await metricValue(quiet, 'sotto_gateway_envelopes_pushed_total'));
    const takenBefore = await taken();
    // Connected and never reading: what it is sent waits in HTTP/2 flow control, then in the mailbox.
    const inbox = connectAt(quiet, bob);
    const started = Date.now();
    const sent = await queue(alice, bob, 10_000, 1000, 64);
    const sendSeconds = (Date.now() - started) / 1000;
    await routed(bob, 10_000);
    // The relay pushed the gateway every routed batch; the gateway took at most 256 (pushed, or read from
    // the mailbox once the device stopped taking them) and now waits for the device.
    await heldBack(quiet);
    const read = (await taken()) - takenBefore;
    const held = await scrapeMetrics(quiet);
    expect(read).toBeGreaterThan(0);
    expect(read).toBeLessThanOrEqual(MAX_IN_FLIGHT);
    expect(held.get('sotto_gateway_delivery_in_flight_envelopes')).toBe(read);
    expect(held.get('sotto_gateway_delivery_in_flight_bytes')).toBe(read * 1000);
    const now = memoryOf(held);
    const heapGrowth = now.heapMiB - memoryOf(before).heapMiB;
    process.stderr.write(
      `[non-reading device] 10,000 envelopes queued in ${sendSeconds.toFixed(1)} s; the gateway read ${read} of them; ` +
        `heap ${now.heapMiB} MiB (${heapGrowth.toFixed(1)} MiB more than before), RSS ${now.rssMiB} MiB\n`,
    );
    // The rest wait in the mailbox, not in the gateway.
    expect(await queued(bob)).toBe(10_000);

    // Reading and acknowledging as it goes, the device gets every one, once, and the gateway read each once.
    const received = await readAll(inbox.read(), 10_000);
    expect(received).toHaveLength(10_000);
    expect(new Set(received)).toEqual(new Set(sent));
    await metricUntil(quiet, 'sotto_gateway_delivery_in_flight_envelopes', (n) => n === 0);
    expect((await taken()) - takenBefore).toBe(10_000);
    expect(await queued(bob)).toBe(0);
    inbox.call.end();
  }, 600_000);

  it('bounds the bytes it holds too: a backlog of large envelopes waits in the mailbox and then drains whole', async () => {
    const [alice, bob] = await Promise.all([register(), register()]);
    const inbox = connectAt(quiet, bob);
    const envelopeBytes = 200 * 1024;
    // 6 MiB: more than one ReadMailbox answer may carry, and six times what the gateway may hold.
    const sent = await queue(alice, bob, 30, envelopeBytes, 4);
    await routed(bob, 30);
    await heldBack(quiet);
    const heldBytes = await metricValue(quiet, 'sotto_gateway_delivery_in_flight_bytes');
    expect(heldBytes).toBeGreaterThan(0);
    // The window stops reading at the limit; the page that reached it may end with one envelope past it.
    expect(heldBytes).toBeLessThan(MAX_IN_FLIGHT_BYTES + envelopeBytes);

    const received = await readAll(inbox.read(), 30);
    expect(new Set(received)).toEqual(new Set(sent));
    expect(received).toHaveLength(30);
    inbox.call.end();
  });

  it('ends a stream whose device acknowledges more than 1000 GUIDs at once with RESOURCE_EXHAUSTED', async () => {
    const bob = await register();
    const inbox = connectAt(cutOff, bob).read();
    expect(await inbox.next()).toEqual({ queueEmpty: {} });
    inbox.ack(Array.from({ length: 1001 }, () => randomUUID()));
    expect(await inbox.next()).toBe('end');
    expect(inbox.error).toMatchObject({
      code: status.RESOURCE_EXHAUSTED,
      details: 'ack.guids: at most 1000 per acknowledgement, not 1001',
    });
  });

  it('drains a connected device again, with backoff, while the relay is unreachable, and delivers once it is back, on the same stream', async () => {
    const [alice, bob] = await Promise.all([register(), register()]);
    const inbox = connectAt(cutOff, bob).read();
    expect(await inbox.next()).toEqual({ queueEmpty: {} });
    const failuresBefore = await metricValue(cutOff, 'sotto_gateway_drain_failures_total');
    const outageContent = Buffer.alloc(gatewayEvents.NEW_MAIL_MAX_BYTES + 1, 'through the outage ');

    // The relay vanishes for this gateway only: connections are cut and new ones refused.
    relayProxy.pause();
    relayProxy.cut();
    try {
      // Alice's gateway still reaches the relay: the message is accepted, routed, and this gateway nudged.
      // (Too large to come with the nudge, so the gateway must read it from the mailbox through the relay.)
      const { guids } = await unary(
        publicMessaging.send.bind(publicMessaging),
        {
          destinationAccountId: bob.accountId,
          clientTimestampMs: String(Date.now()),
          ephemeral: false,
          envelopes: [
            {
              destinationDeviceId: 1,
              destinationRegistrationId: bob.registrationId,
              type: EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT,
              content: outageContent,
            },
          ],
        },
        { metadata: alice.auth },
      );
      // Its drain fails, and fails again on retry: nothing is dropped on the floor.
      await metricUntil(cutOff, 'sotto_gateway_drain_failures_total', (n) => n >= failuresBefore + 2);
      expect(await metricValue(cutOff, 'sotto_gateway_drains_awaiting_retry')).toBe(1);
      relayProxy.resume();

      const delivered = await inbox.next();
      expect(delivered).not.toBe('end');
      expect((delivered as ConnectResponse).envelope?.guid).toBe(guids[0]);
      expect(Buffer.from((delivered as ConnectResponse).envelope?.content ?? [])).toEqual(outageContent);
      expect(inbox.ended).toBe(false);
      await metricUntil(cutOff, 'sotto_gateway_drains_awaiting_retry', (n) => n === 0);
      inbox.ack(guids);
      inbox.call.end();
    } finally {
      relayProxy.resume();
    }
  });
});
