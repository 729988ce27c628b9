import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { Client, status, type ServiceError } from '@grpc/grpc-js';
import { IdentityKeyPair } from '@signalapp/libsignal-client';
import {
  authorizationMetadata,
  generateDeviceKeys,
  opaqueSendRequest,
  publicDeviceKeys,
  serviceErrorOf,
  signDeviceList,
  SottoClient,
  StreamSender,
  unary,
} from '@sotto/client-sdk';
import { EnvelopeType } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import {
  ConnectResponse,
  DeviceServiceClient,
  MessagingServiceClient,
  MessagingServiceService,
  SendRequest,
  StreamSend,
  type StreamSendResult,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { RelayServiceClient } from '@sotto/contracts/generated/sotto/relay/v1/relay';
import {
  callerCredentials,
  gatewayCredentials,
  metricUntil,
  metricValue as metric,
  startGatewayFor,
  startTcpProxy,
  startTestPlatform,
  type Platform,
  type TcpProxy,
  type TestService,
} from '@sotto/testing';
import { Inbox, PublicApi, type Device } from './testing/public-api';

// A connected device sends on its Connect stream instead of calling Send. Played through the
// public gateway as an attacker would: the stream send is Send in every respect but the
// transport (sender, checks, errors, limits), and a stream holds only so many sends at a time.

/** Sends one stream takes before it stops reading (the gateway's CONNECT_SEND_MAX_IN_FLIGHT here). */
const MAX_IN_FLIGHT = 4;
/** Sends per device (RATE_LIMIT_SEND_PER_DEVICE here): room for each test's own, and a flood past it. */
const SENDS_PER_DEVICE = 20;
const HOUR = 3_600_000;
/** How long the relay has to answer a batch of sends (RELAY_SEND_TIMEOUT_MS) at the gateway whose relay hangs past it. */
const SEND_TIMEOUT_MS = 3_000;

/** A loopback address no other suite uses, so the per-address buckets in the shared Redis are this suite's. */
const freshAddress = (): string => `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;

/** HTTP/2 headers grpc-js reports with the trailers of a call answered by its status alone. */
const HTTP_HEADERS = new Set(['content-type', 'date']);

/** What a client is told of a failed send, whichever way it went: code, message and trailers. */
const told = (error: ServiceError) => ({
  code: error.code,
  details: error.details,
  trailers: Object.fromEntries(
    Object.entries(error.metadata.toJSON()).filter(([key]) => !HTTP_HEADERS.has(key)),
  ),
});

const failure = (call: Promise<unknown>): Promise<ServiceError> =>
  call.then(
    () => {
      throw new Error('the send succeeded');
    },
    (error: unknown) => error as ServiceError,
  );

/** Reads the stream, acknowledging envelopes, until `count` send results came; returns them by request id. */
async function resultsOf(inbox: Inbox, count: number): Promise<Map<string, StreamSendResult>> {
  const results = new Map<string, StreamSendResult>();
  while (results.size < count) {
    const message = await inbox.next();
    if (message === 'end') throw new Error(`the stream ended: ${inbox.error?.details ?? 'no error'}`);
    if (message.envelope) inbox.ack([message.envelope.guid]);
    if (message.sendResult) results.set(message.sendResult.requestId, message.sendResult);
  }
  return results;
}

/** Waits for the stream's QueueEmpty: it is open, and its sends are read from now on. */
async function opened(inbox: Inbox): Promise<Inbox> {
  expect(await inbox.untilEmpty()).toEqual([]);
  return inbox;
}

describe('sending on the Connect stream, through the public API', () => {
  let platform: Platform;
  let proxy: TcpProxy;
  // A gateway reaching the relay through a proxy the tests can hold (a relay that hangs) and cut.
  let relayProxy: TcpProxy;
  let stalling: TestService;
  // Another, whose relay gets RELAY_SEND_TIMEOUT_MS to answer and is held past it.
  let hurriedRelay: TcpProxy;
  let hurried: TestService;
  let api: PublicApi;
  let relay: RelayServiceClient;
  const profiles = mkdtempSync(join(tmpdir(), 'sotto-stream-sends-'));
  const closers: { close(): unknown }[] = [];

  beforeAll(async () => {
    platform = await startTestPlatform({
      gateway: {
        SOTTO_RATE_LIMITS: 'on',
        RATE_LIMIT_REGISTER_PER_SOURCE: '100/1h',
        RATE_LIMIT_SEND_PER_DEVICE: `${SENDS_PER_DEVICE}/1h`,
        CONNECT_SEND_MAX_IN_FLIGHT: String(MAX_IN_FLIGHT),
      },
    });
    relayProxy = await startTcpProxy(platform.services['message-relay'].grpc);
    hurriedRelay = await startTcpProxy(platform.services['message-relay'].grpc);
    const upstream = { CONNECT_SEND_MAX_IN_FLIGHT: String(MAX_IN_FLIGHT) };
    [stalling, hurried] = await Promise.all([
      startGatewayFor(platform, { ...upstream, MESSAGE_RELAY_ADDR: relayProxy.address }),
      startGatewayFor(platform, {
        ...upstream,
        MESSAGE_RELAY_ADDR: hurriedRelay.address,
        RELAY_SEND_TIMEOUT_MS: String(SEND_TIMEOUT_MS),
        // Each send goes to the relay at once, in a batch of its own, whatever else is in flight.
        RELAY_BATCH_CONCURRENCY: String(2 * MAX_IN_FLIGHT),
      }),
    ]);
    // Every client comes through here, from an address of this suite's own.
    proxy = await startTcpProxy(platform.gateway, { from: freshAddress() });
    api = new PublicApi(proxy.address);
    // Backlogs are queued, and mailboxes counted, as the gateway does it: through the relay.
    relay = new RelayServiceClient(platform.services['message-relay'].grpc, callerCredentials('gateway'));
    closers.push(api, relay);
  });

  afterAll(async () => {
    closers.forEach((closer) => closer.close());
    await proxy?.close();
    await Promise.all([stalling?.stop(), hurried?.stop()]);
    await Promise.all([relayProxy?.close(), hurriedRelay?.close()]);
    await platform?.stop();
    rmSync(profiles, { recursive: true, force: true });
  });

  const gateway = () => platform.services.gateway;

  const sendOn = (inbox: Inbox, requestId: string, request: SendRequest): void =>
    void inbox.call.write({ send: { requestId, request } });

  const unarySend = (from: Device, request: SendRequest) =>
    unary(api.messaging.send.bind(api.messaging), request, { metadata: from.auth });

  /** The envelopes in the device's mailbox, read as the gateway reads it. */
  async function queued(device: Device, deviceId = 1): Promise<number> {
    let count = 0;
    let after = '0';
    for (;;) {
      const page = await unary(relay.readMailbox.bind(relay), {
        accountId: device.accountId,
        deviceId,
        afterSequence: after,
        limit: 500,
        maxBytes: 0,
      });
      count += page.envelopes.length;
      after = page.envelopes[page.envelopes.length - 1]?.sequence ?? after;
      if (page.drained || page.envelopes.length === 0) return count;
    }
  }

  /** Until the device's mailbox holds `count` envelopes: an accepted send is routed there a little later. */
  async function routed(device: Device, count: number, deviceId = 1): Promise<void> {
    const deadline = Date.now() + 60_000;
    while ((await queued(device, deviceId)) < count) {
      if (Date.now() > deadline) throw new Error(`fewer than ${count} envelopes routed after 60 s`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  it('delivers a send made on the stream and answers it with its request id', async () => {
    const [alice, bob] = await Promise.all([api.register(), api.register()]);
    const handledBefore = await metric(gateway(), 'sotto_gateway_stream_sends_total{grpc_code="OK"}');
    const sender = await opened(api.connect(alice));
    const receiver = await opened(api.connect(bob));

    sendOn(sender, '18446744073709551615', opaqueSendRequest(bob, Buffer.from('over the stream')));
    const [result] = (await resultsOf(sender, 1)).values();
    expect(result?.requestId).toBe('18446744073709551615');
    expect(result?.error).toBeUndefined();
    expect(result?.sent?.guids).toHaveLength(1);

    const delivered = await receiver.next();
    expect(delivered).not.toBe('end');
    expect((delivered as ConnectResponse).envelope).toMatchObject({
      guid: result?.sent?.guids[0],
      sourceAccountId: alice.accountId,
      sourceDeviceId: 1,
      content: Buffer.from('over the stream'),
    });
    expect(await metric(gateway(), 'sotto_gateway_stream_sends_total{grpc_code="OK"}')).toBe(
      handledBefore + 1,
    );
    sender.call.end();
    receiver.call.end();
  });

  it("sends as the stream's device whatever the send carries, even before the stream is open", async () => {
    const [mallory, alice, bob] = await Promise.all([api.register(), api.register(), api.register()]);
    // Mallory's own stream, written byte by byte: alice's ids wherever a sender could be named (the
    // places the relay's own SendRequest keeps its source, and unknown fields of the public messages).
    const raw = new Client(proxy.address, gatewayCredentials());
    closers.push(raw);
    const call = raw.makeBidiStreamRequest(
      MessagingServiceService.connect.path,
      (bytes: Buffer) => bytes,
      (bytes: Buffer) => ConnectResponse.decode(bytes),
      mallory.auth,
    );
    const answered = new Promise<StreamSendResult>((resolve, reject) => {
      call.on('data', (message: ConnectResponse) => message.sendResult && resolve(message.sendResult));
      call.on('error', reject);
    });
    const request = SendRequest.encode(opaqueSendRequest(bob, Buffer.from('from alice, honest')))
      .uint32((20 << 3) | 2)
      .string(alice.accountId)
      .uint32(21 << 3)
      .uint32(1)
      .finish();
    const send = StreamSend.encode({ requestId: '1' })
      .uint32((2 << 3) | 2)
      .bytes(request)
      .uint32((3 << 3) | 2)
      .string(alice.accountId)
      .uint32(4 << 3)
      .uint32(1)
      .finish();
    // Written at once: it waits, unread, while the stream opens, and is not lost.
    call.write(
      Buffer.from(
        new BinaryWriter()
          .uint32((2 << 3) | 2)
          .bytes(send)
          .finish(),
      ),
    );
    const result = await answered;
    expect(result.requestId).toBe('1');
    expect(result.sent?.guids).toHaveLength(1);

    await routed(bob, 1);
    const receiver = api.connect(bob);
    const [delivered] = await receiver.untilEmpty();
    expect(delivered).toMatchObject({
      guid: result.sent?.guids[0],
      sourceAccountId: mallory.accountId,
      sourceDeviceId: 1,
      content: Buffer.from('from alice, honest'),
    });
    receiver.call.end();
    call.end();
  });

  it('answers garbage with the error Send gives it, and the stream stays usable', async () => {
    const [mallory, bob] = await Promise.all([api.register(), api.register()]);
    const envelope = (content: Uint8Array) => ({
      destinationDeviceId: 1,
      destinationRegistrationId: bob.registrationId,
      type: EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT,
      content,
    });
    const timestamped = { clientTimestampMs: '1', ephemeral: false };
    // Each as the stream carries it, and as Send would: a stream send with no request in it is Send with nothing set.
    const garbage: [string, SendRequest | undefined][] = [
      ['no envelopes', { destinationAccountId: bob.accountId, ...timestamped, envelopes: [] }],
      [
        'a destination that is no account id',
        { destinationAccountId: 'not-an-account', ...timestamped, envelopes: [envelope(Buffer.from('x'))] },
      ],
      [
        'content over the limit',
        {
          destinationAccountId: bob.accountId,
          ...timestamped,
          envelopes: [envelope(randomBytes(256 * 1024 + 1))],
        },
      ],
      ['nothing at all', undefined],
    ];
    const nothing: SendRequest = {
      destinationAccountId: '',
      clientTimestampMs: '0',
      ephemeral: false,
      envelopes: [],
    };
    const sender = await opened(api.connect(mallory));
    garbage.forEach(([, request], index) => {
      sender.call.write({
        send: { requestId: String(index + 1), ...(request === undefined ? {} : { request }) },
      });
    });
    const results = await resultsOf(sender, garbage.length);
    const errors = new Map<string, ReturnType<typeof told>>();
    for (const [index, [name, request]] of garbage.entries()) {
      const error = results.get(String(index + 1))?.error;
      if (error === undefined) throw new Error(`${name}: accepted on the stream`);
      errors.set(name, told(serviceErrorOf(error)));
      expect({ name, ...told(serviceErrorOf(error)) }).toEqual({
        name,
        ...told(await failure(unarySend(mallory, request ?? nothing))),
      });
    }
    expect(errors.get('no envelopes')).toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: 'envelopes: at least one is required',
    });
    expect(errors.get('content over the limit')).toMatchObject({
      code: status.RESOURCE_EXHAUSTED,
      trailers: { 'sotto-refusal': ['too-large'] },
    });
    expect(errors.get('nothing at all')).toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: 'destination_account_id: is required',
    });

    // Still open, still sending.
    sendOn(sender, '10', opaqueSendRequest(bob, Buffer.from('after the garbage')));
    expect((await resultsOf(sender, 1)).get('10')?.sent?.guids).toHaveLength(1);
    await routed(bob, 1);
    const receiver = api.connect(bob);
    const bodies = (await receiver.untilEmpty()).map((delivered) =>
      Buffer.from(delivered.content).toString(),
    );
    expect(bodies).toEqual(['after the garbage']);
    receiver.call.end();
    sender.call.end();
  });

  it('refuses a send under a request id still in flight on the stream, and the first still goes', async () => {
    const [mallory, bob] = await Promise.all([api.register(), api.register()]);
    const messaging = new MessagingServiceClient(stalling.grpc, gatewayCredentials());
    closers.push(messaging);
    const sender = await opened(new Inbox(messaging.connect(mallory.auth)));
    // The relay hangs, so the first send under id 9 is still in flight when the second comes.
    relayProxy.hold();
    try {
      sendOn(sender, '9', opaqueSendRequest(bob, Buffer.from('first')));
      sendOn(sender, '9', opaqueSendRequest(bob, Buffer.from('second')));
      const refused = await sender.next();
      expect(refused).toEqual({
        sendResult: {
          requestId: '9',
          error: {
            code: status.INVALID_ARGUMENT,
            details: 'send.request_id: 9 is already in flight on this stream',
            trailers: [],
          },
        },
      });
    } finally {
      relayProxy.release();
    }
    expect((await resultsOf(sender, 1)).get('9')?.sent?.guids).toHaveLength(1);
    await routed(bob, 1);
    const receiver = api.connect(bob);
    const bodies = (await receiver.untilEmpty()).map((delivered) =>
      Buffer.from(delivered.content).toString(),
    );
    expect(bodies).toEqual(['first']);
    receiver.call.end();
    sender.call.end();
  });

  it("stops a flood on the stream at the device's send limit, which unary sends share", async () => {
    const [spammer, victim] = await Promise.all([api.register(), api.register()]);
    const hits = () =>
      metric(gateway(), 'sotto_rate_limit_hits_total{limit="send_per_device"}').catch(() => 0);
    const hitsBefore = await hits();
    const refusedBefore = await metric(
      gateway(),
      'sotto_gateway_stream_sends_total{grpc_code="RESOURCE_EXHAUSTED"}',
    ).catch(() => 0);
    for (let i = 0; i < 5; i++)
      await unarySend(spammer, opaqueSendRequest(victim, Buffer.from(`unary ${i}`)));

    const flood = await opened(api.connect(spammer));
    const count = SENDS_PER_DEVICE + 5;
    for (let i = 1; i <= count; i++)
      sendOn(flood, String(i), opaqueSendRequest(victim, Buffer.from(`flood ${i}`)));
    const results = [...(await resultsOf(flood, count)).values()];
    const accepted = results.filter((result) => result.sent !== undefined);
    const refused = results.flatMap((result) => (result.error ? [serviceErrorOf(result.error)] : []));
    expect(accepted).toHaveLength(SENDS_PER_DEVICE - 5);
    expect(refused).toHaveLength(10);
    for (const error of refused) {
      expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
      const match = /^too many messages sent from this device; retry in (\d+) s$/.exec(error.details);
      expect(match).not.toBeNull();
      const retryAfterMs = Number(error.metadata.get('retry-after-ms')[0]);
      expect(retryAfterMs).toBeGreaterThan(0);
      expect(retryAfterMs).toBeLessThanOrEqual(HOUR / SENDS_PER_DEVICE);
      expect(error.metadata.get('sotto-refusal')).toEqual(['rate-limited']);
    }
    // The unary Send is out of allowance too, and the stream is still open.
    const unaryRefusal = await failure(
      unarySend(spammer, opaqueSendRequest(victim, Buffer.from('unary again'))),
    );
    expect(unaryRefusal.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(unaryRefusal.details).toMatch(/^too many messages sent from this device; retry in \d+ s$/);
    expect(flood.ended).toBe(false);
    expect(await hits()).toBe(hitsBefore + 11);
    expect(await metric(gateway(), 'sotto_gateway_stream_sends_total{grpc_code="RESOURCE_EXHAUSTED"}')).toBe(
      refusedBefore + 10,
    );
    await routed(victim, SENDS_PER_DEVICE);
    expect(await queued(victim)).toBe(SENDS_PER_DEVICE);
    flood.call.end();
  });

  it(`takes at most ${MAX_IN_FLIGHT} sends at a time off a stream, leaving the rest unread while the relay hangs`, async () => {
    const [alice, bob] = await Promise.all([api.register(), api.register()]);
    const messaging = new MessagingServiceClient(stalling.grpc, gatewayCredentials());
    closers.push(messaging);
    const inbox = await opened(new Inbox(messaging.connect(alice.auth)));

    // The relay stops answering: whatever the gateway sends it waits.
    relayProxy.hold();
    const count = 10;
    try {
      for (let i = 1; i <= count; i++)
        sendOn(inbox, String(i), opaqueSendRequest(bob, Buffer.from(`send ${i}`)));
      // The gateway took MAX_IN_FLIGHT of them and holds only those; the rest wait in flow control.
      await metricUntil(stalling, 'sotto_gateway_stream_sends_in_flight', (n) => n === MAX_IN_FLIGHT);
    } finally {
      // The hung connection breaks: what was sent on it fails, and new calls reach the relay.
      relayProxy.cut();
      relayProxy.release();
    }

    const results = await resultsOf(inbox, count);
    const outcomes = Array.from({ length: count }, (_, index) => {
      const result = results.get(String(index + 1));
      return result?.error ? serviceErrorOf(result.error).code : result?.sent?.guids.length;
    });
    // Only the sends it had taken were on the broken connection; each other one was read after, and went through.
    expect(outcomes).toEqual([
      ...Array.from({ length: MAX_IN_FLIGHT }, () => status.UNAVAILABLE),
      ...Array.from({ length: count - MAX_IN_FLIGHT }, () => 1),
    ]);
    await routed(bob, count - MAX_IN_FLIGHT);
    expect(await queued(bob)).toBe(count - MAX_IN_FLIGHT);
    expect(await metric(stalling, 'sotto_gateway_stream_sends_in_flight')).toBe(0);
    inbox.call.end();
  });

  it('fails sends with DEADLINE_EXCEEDED when the relay hangs past RELAY_SEND_TIMEOUT_MS, unary and on the stream, which gets its budget back; sent again after, they arrive', async () => {
    const [alice, bob] = await Promise.all([api.register(), api.register()]);
    const messaging = new MessagingServiceClient(hurried.grpc, gatewayCredentials());
    closers.push(messaging);
    const sender = await opened(new Inbox(messaging.connect(alice.auth)));
    const receiver = await opened(api.connect(bob));
    const onStream = Array.from({ length: MAX_IN_FLIGHT }, (_, index) =>
      opaqueSendRequest(bob, Buffer.from(`on the stream ${index + 1}`)),
    );
    const unaryRequest = opaqueSendRequest(bob, Buffer.from('unary'));
    const sendUnary = () => unary(messaging.send.bind(messaging), unaryRequest, { metadata: alice.auth });
    const sendOnStream = () =>
      onStream.forEach((request, index) => sendOn(sender, String(index + 1), request));

    // The relay stops answering: a full stream budget of sends and a unary Send wait on it.
    hurriedRelay.hold();
    let unaryError: ServiceError;
    let streamResults: Map<string, StreamSendResult>;
    let waitedMs: number;
    try {
      const started = Date.now();
      sendOnStream();
      const answered = Promise.all([failure(sendUnary()), resultsOf(sender, MAX_IN_FLIGHT)]);
      await metricUntil(hurried, 'sotto_gateway_stream_sends_in_flight', (n) => n === MAX_IN_FLIGHT, {
        withinMs: SEND_TIMEOUT_MS,
      });
      [unaryError, streamResults] = await answered;
      waitedMs = Date.now() - started;
    } finally {
      hurriedRelay.release();
    }

    // Each is told, once the deadline passed, that its fate is unknown.
    const timedOut = {
      code: status.DEADLINE_EXCEEDED,
      details: `message-relay did not answer within ${SEND_TIMEOUT_MS} ms: whether the message was accepted is unknown, and sending it again may deliver it twice`,
    };
    expect(waitedMs).toBeGreaterThanOrEqual(SEND_TIMEOUT_MS);
    expect(waitedMs).toBeLessThan(SEND_TIMEOUT_MS + 5_000);
    expect(told(unaryError)).toMatchObject(timedOut);
    for (let id = 1; id <= MAX_IN_FLIGHT; id++) {
      const error = streamResults.get(String(id))?.error;
      expect(error && told(serviceErrorOf(error))).toMatchObject(timedOut);
    }
    expect(await metric(hurried, 'sotto_gateway_stream_sends_total{grpc_code="DEADLINE_EXCEEDED"}')).toBe(
      MAX_IN_FLIGHT,
    );
    // The stream's budget is given back, and its sends are read again.
    await metricUntil(hurried, 'sotto_gateway_stream_sends_in_flight', (n) => n === 0);
    expect(sender.ended).toBe(false);

    sendOnStream();
    const [sentAgain, resent] = await Promise.all([sendUnary(), resultsOf(sender, MAX_IN_FLIGHT)]);
    const retried = [
      ...sentAgain.guids,
      ...[...resent.values()].flatMap((result) => result.sent?.guids ?? []),
    ];
    expect(retried).toHaveLength(MAX_IN_FLIGHT + 1);

    // Bob gets every message sent again, each under its GUID once. A first try may have reached
    // Kafka after all (the relay took it once released): then it comes too, under a GUID of its own.
    const received: { guid: string; body: string }[] = [];
    const awaited = new Set(retried);
    while (awaited.size > 0) {
      const message = await receiver.next();
      if (message === 'end') throw new Error(`bob's stream ended: ${receiver.error?.details ?? 'no error'}`);
      if (!message.envelope) continue;
      received.push({ guid: message.envelope.guid, body: Buffer.from(message.envelope.content).toString() });
      receiver.ack([message.envelope.guid]);
      awaited.delete(message.envelope.guid);
    }
    expect(new Set(received.map(({ guid }) => guid)).size).toBe(received.length);
    const copies = new Map<string, number>();
    for (const { body } of received) copies.set(body, (copies.get(body) ?? 0) + 1);
    expect([...copies.keys()].sort()).toEqual(
      [unaryRequest, ...onStream]
        .map((request) => Buffer.from(request.envelopes[0]?.content ?? []).toString())
        .sort(),
    );
    for (const count of copies.values()) expect([1, 2]).toContain(count);
    const twice = [...copies.values()].filter((count) => count === 2).length;
    process.stderr.write(
      `[relay hung past the deadline] ${twice} of ${copies.size} first tries were accepted once the relay was released, and came as well\n`,
    );
    sender.call.end();
    receiver.call.end();
  });

  it('ends the stream of a revoked credential; nothing more is sent on it', async () => {
    const [alice, bob, carol] = await Promise.all([api.register(), api.register(), api.register()]);
    const inbox = await opened(api.connect(alice));
    const sender = new StreamSender(inbox.call);
    await sender.send(opaqueSendRequest(bob, Buffer.from('before')));

    // Alice's secret is rotated (as after a theft): the old one, and the stream opened with it, are done.
    await unary(
      api.accounts.rotateDeviceSecret.bind(api.accounts),
      { newDeviceSecret: randomBytes(32).toString('base64url') },
      { metadata: alice.auth },
    );
    // (Past the answer to that send, which came on the same stream.)
    let message: ConnectResponse | 'end';
    do message = await inbox.next();
    while (message !== 'end' && message.sendResult !== undefined);
    expect(message).toEqual({ displaced: {} });
    // Written as soon as the gateway said so, before the end reaches the client: the gateway drops it.
    sendOn(inbox, '1000', opaqueSendRequest(bob, Buffer.from('after the revocation')));
    expect(await inbox.next()).toBe('end');
    await expect(failure(sender.send(opaqueSendRequest(bob, Buffer.from('later'))))).resolves.toMatchObject({
      code: status.UNAVAILABLE,
    });
    const reconnect = api.connect(alice);
    expect(await reconnect.next()).toBe('end');
    expect(reconnect.error?.code).toBe(status.UNAUTHENTICATED);

    await unarySend(carol, opaqueSendRequest(bob, Buffer.from('marker')));
    await routed(bob, 2);
    const receiver = api.connect(bob);
    const bodies = (await receiver.untilEmpty()).map((delivered) =>
      Buffer.from(delivered.content).toString(),
    );
    expect(bodies).toEqual(['before', 'marker']);
    receiver.call.end();
  });

  it('surfaces mismatched devices to the SDK on the stream as from Send: it mends its sessions and sends again', async () => {
    const name = () => `s_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
    const [alice, bob] = await Promise.all(
      ['alice', 'bob'].map((who) =>
        SottoClient.register({ profileDir: join(profiles, who), server: proxy.address, username: name() }),
      ),
    );
    if (alice === undefined || bob === undefined) throw new Error('not registered');
    closers.push(alice, bob);
    await alice.send(bob.username, 'hello');

    // Bob's account moves to a new phone: device 1 is signed out, and alice does not know yet.
    const credential = randomBytes(32);
    const bobAccount = bob.profile.account();
    await unary(
      api.accounts.setRecoveryCredential.bind(api.accounts),
      { recoveryCredential: credential, currentRecoveryCredential: Buffer.alloc(0) },
      { metadata: authorizationMetadata(bobAccount) },
    );
    // The same identity key (bob kept it): a new device, no new safety number.
    const keys = generateDeviceKeys(
      20,
      IdentityKeyPair.deserialize(Buffer.from(bobAccount.identityKeyPair, 'base64')),
    );
    const phone = await unary(api.accounts.recoverAccount.bind(api.accounts), {
      username: bob.username,
      recoveryCredential: credential,
      identityKey: Buffer.from(keys.identity.publicKey.serialize()),
      device: publicDeviceKeys(keys),
    });
    // The new phone publishes the account's signed device list, as every client does after a recovery.
    const devices = new DeviceServiceClient(proxy.address, gatewayCredentials());
    try {
      await unary(
        devices.setDeviceList.bind(devices),
        {
          deviceList: signDeviceList(
            {
              accountId: phone.accountId,
              version: BigInt(Date.now()),
              devices: [{ deviceId: phone.deviceId, registrationId: keys.registrationId }],
              signedAtMs: Date.now(),
            },
            keys.identity.privateKey,
          ),
        },
        { metadata: authorizationMetadata(phone) },
      );
    } finally {
      devices.close();
    }

    // With her stream open, alice's sends go on it: refused for the device list, mended, sent again.
    const series = (code: string) => `sotto_gateway_stream_sends_total{grpc_code="${code}"}`;
    const unarySends =
      'sotto_grpc_server_handled_total{grpc_method="MessagingController.send",grpc_code="OK"}';
    const before = {
      mismatched: await metric(gateway(), series('FAILED_PRECONDITION')).catch(() => 0),
      unary: await metric(gateway(), unarySends),
    };
    const stop = new AbortController();
    let drained!: () => void;
    const open = new Promise<void>((resolve) => (drained = resolve));
    const receiving = alice.receive({ waitSeconds: 60, signal: stop.signal, onDrained: () => drained() });
    let sent: Awaited<ReturnType<SottoClient['send']>>;
    try {
      await open;
      sent = await alice.send(bob.username, 'to the new phone');
    } finally {
      stop.abort();
      await receiving;
    }
    expect(sent.guids).toHaveLength(1);
    expect(await metric(gateway(), series('FAILED_PRECONDITION'))).toBe(before.mismatched + 1);
    expect(await metric(gateway(), unarySends)).toBe(before.unary);

    const newPhone: Device = {
      accountId: phone.accountId,
      registrationId: keys.registrationId,
      auth: authorizationMetadata(phone),
    };
    await routed(newPhone, 1, phone.deviceId);
    const receiver = api.connect(newPhone);
    const [delivered] = await receiver.untilEmpty();
    expect(delivered).toMatchObject({
      guid: sent.guids[0],
      sourceAccountId: alice.accountId,
      destinationDeviceId: phone.deviceId,
    });
    receiver.call.end();
  });
});
