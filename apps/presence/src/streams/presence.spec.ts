import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { unary } from '@sotto/client-sdk';
import { gatewayEvents } from '@sotto/contracts';
import { PresenceServiceClient } from '@sotto/contracts/generated/sotto/presence/v1/presence';
import { callerCredentials, startTestService, testRedis, type TestService } from '@sotto/testing';

/** Collects the events published on one gateway's channel. */
async function listen(
  gatewayId: string,
): Promise<{ next: () => Promise<gatewayEvents.Event>; close: () => void }> {
  const subscriber = testRedis();
  const queue: gatewayEvents.Event[] = [];
  const waiting: ((event: gatewayEvents.Event) => void)[] = [];
  subscriber.on('messageBuffer', (_channel: Buffer, message: Buffer) => {
    const event = gatewayEvents.decode(message);
    const waiter = waiting.shift();
    if (waiter) waiter(event);
    else queue.push(event);
  });
  await subscriber.subscribe(gatewayEvents.channel(gatewayId));
  return {
    next: () => {
      const ready = queue.shift();
      return ready ? Promise.resolve(ready) : new Promise((resolve) => waiting.push(resolve));
    },
    close: () => subscriber.disconnect(),
  };
}

describe('presence', () => {
  let service: TestService;
  let shortLived: TestService;
  // Each caller the topology allows: the gateway claims streams, the relay locates and notifies.
  let client: PresenceServiceClient;
  let relay: PresenceServiceClient;

  beforeAll(async () => {
    [service, shortLived] = await Promise.all([
      startTestService('presence'),
      startTestService('presence', { PRESENCE_TTL_MS: '1500' }),
    ]);
    client = new PresenceServiceClient(service.grpc, callerCredentials('gateway'));
    relay = new PresenceServiceClient(service.grpc, callerCredentials('message-relay'));
  });

  afterAll(async () => {
    client?.close();
    relay?.close();
    await Promise.all([service?.stop(), shortLived?.stop()]);
  });

  const device = () => ({ accountId: randomUUID(), deviceId: 1 });
  const claim = (d: { accountId: string; deviceId: number }, gatewayId: string, streamId: string) =>
    unary(client.claimStream.bind(client), { device: d, gatewayId, streamId });
  const locate = async (...devices: { accountId: string; deviceId: number }[]) =>
    (await unary(relay.locate.bind(relay), { devices })).locations.map(({ gatewayId, streamId }) => ({
      gatewayId,
      streamId,
    }));

  it('records a stream, and a second stream of the same device displaces the first with an event', async () => {
    const phone = device();
    const gw1 = `gw-${randomUUID()}`;
    const gw2 = `gw-${randomUUID()}`;
    expect(await claim(phone, gw1, 's1')).toEqual({ displacedStreamId: '', displacedGatewayId: '' });
    expect(await locate(phone)).toEqual([{ gatewayId: gw1, streamId: 's1' }]);

    const events = await listen(gw1);
    try {
      expect(await claim(phone, gw2, 's2')).toEqual({ displacedStreamId: 's1', displacedGatewayId: gw1 });
      expect(await events.next()).toEqual({
        device: phone,
        streamId: 's1',
        newMail: undefined,
        displaced: { byGatewayId: gw2 },
      });
      expect(await locate(phone)).toEqual([{ gatewayId: gw2, streamId: 's2' }]);
    } finally {
      events.close();
    }
  });

  it('releases a stream only for the stream that holds it', async () => {
    const phone = device();
    await claim(phone, 'gw-a', 'old');
    await claim(phone, 'gw-b', 'new');
    expect(await unary(client.releaseStream.bind(client), { device: phone, streamId: 'old' })).toEqual({
      released: false,
    });
    expect(await locate(phone)).toEqual([{ gatewayId: 'gw-b', streamId: 'new' }]);
    expect(await unary(client.releaseStream.bind(client), { device: phone, streamId: 'new' })).toEqual({
      released: true,
    });
    expect(await locate(phone)).toEqual([{ gatewayId: '', streamId: '' }]);
  });

  it('ends the streams of signed-out devices: their gateway is told and the claims are gone', async () => {
    const old = device();
    const never = device();
    const gw = `gw-${randomUUID()}`;
    await claim(old, gw, 'old-stream');
    const events = await listen(gw);
    try {
      expect(await unary(client.endStreams.bind(client), { devices: [old, never] })).toEqual({ ended: 1 });
      expect(await events.next()).toMatchObject({ device: old, streamId: 'old-stream', displaced: {} });
      expect(await locate(old, never)).toEqual([
        { gatewayId: '', streamId: '' },
        { gatewayId: '', streamId: '' },
      ]);
    } finally {
      events.close();
    }
  });

  it("reports a failed vault try to the gateways holding the account's devices, skipping those offline", async () => {
    const accountId = randomUUID();
    const phone = { accountId, deviceId: 1 };
    const laptop = { accountId, deviceId: 2 };
    const offline = { accountId, deviceId: 3 };
    const [gw1, gw2] = [`gw-${randomUUID()}`, `gw-${randomUUID()}`];
    await claim(phone, gw1, 'phone-stream');
    await claim(laptop, gw2, 'laptop-stream');
    const [events1, events2] = await Promise.all([listen(gw1), listen(gw2)]);
    try {
      const report = { attemptsLeft: 7, nextTryAfterMs: '3600000', failedAttempts: 3, destroyed: false };
      expect(
        await unary(client.reportVaultAttempt.bind(client), { devices: [phone, laptop, offline], report }),
      ).toEqual({ delivered: 2 });
      expect(await events1.next()).toMatchObject({
        device: phone,
        streamId: 'phone-stream',
        vaultAttemptFailed: report,
      });
      expect(await events2.next()).toMatchObject({
        device: laptop,
        streamId: 'laptop-stream',
        vaultAttemptFailed: report,
      });
    } finally {
      events1.close();
      events2.close();
    }
    const refused = await unary(client.reportVaultAttempt.bind(client), { devices: [phone] }).catch(
      (thrown: unknown) => thrown,
    );
    expect(refused).toMatchObject({ code: status.INVALID_ARGUMENT, details: 'report: is required' });
  });

  it('lets claims expire when their gateway stops heartbeating, and keeps those it heartbeats', async () => {
    const shortClient = new PresenceServiceClient(shortLived.grpc, callerCredentials('gateway'));
    const shortRelay = new PresenceServiceClient(shortLived.grpc, callerCredentials('message-relay'));
    try {
      const kept = device();
      const dropped = device();
      const gw = `gw-${randomUUID()}`;
      for (const d of [kept, dropped]) {
        await unary(shortClient.claimStream.bind(shortClient), {
          device: d,
          gatewayId: gw,
          streamId: randomUUID(),
        });
      }
      const deadline = Date.now() + 15_000;
      let locations: { gatewayId: string }[] = [];
      while (Date.now() < deadline) {
        await unary(shortClient.heartbeat.bind(shortClient), { gatewayId: gw, devices: [kept] });
        locations = (await unary(shortRelay.locate.bind(shortRelay), { devices: [kept, dropped] })).locations;
        if (locations[1]?.gatewayId === '') break;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      expect(locations.map((location) => location.gatewayId)).toEqual([gw, '']);
    } finally {
      shortClient.close();
      shortRelay.close();
    }
  });

  const oversize = (field: string, count: number) => ({
    code: status.RESOURCE_EXHAUSTED,
    details: `${field}: at most 1000 per call, not ${count}; send them in several calls`,
  });

  it('refuses a Heartbeat of more than 1000 devices whole: none of its claims is kept, while 1000 are', async () => {
    const shortClient = new PresenceServiceClient(shortLived.grpc, callerCredentials('gateway'));
    const shortRelay = new PresenceServiceClient(shortLived.grpc, callerCredentials('message-relay'));
    try {
      // Two gateways: one heartbeats exactly 1000 devices, the other 1001. Each holds the first of its list.
      const [kept, refused] = [device(), device()];
      const [keeper, flooder] = [`gw-${randomUUID()}`, `gw-${randomUUID()}`];
      const keeperList = [kept, ...Array.from({ length: 999 }, device)];
      const flooderList = [refused, ...Array.from({ length: 1000 }, device)];
      for (const [d, gw] of [
        [kept, keeper],
        [refused, flooder],
      ] as const) {
        await unary(shortClient.claimStream.bind(shortClient), { device: d, gatewayId: gw, streamId: 's' });
      }
      const deadline = Date.now() + 15_000;
      let gatewayIds: string[] = [];
      while (Date.now() < deadline) {
        await unary(shortClient.heartbeat.bind(shortClient), { gatewayId: keeper, devices: keeperList });
        const answer = await unary(shortClient.heartbeat.bind(shortClient), {
          gatewayId: flooder,
          devices: flooderList,
        }).catch((thrown: unknown) => thrown);
        expect(answer).toMatchObject(oversize('devices', 1001));
        const { locations } = await unary(shortRelay.locate.bind(shortRelay), { devices: [kept, refused] });
        gatewayIds = locations.map((location) => location.gatewayId);
        if (gatewayIds[1] === '') break;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      // Sliced to its first 1000, the refused call would have kept its first device alive like the other.
      expect(gatewayIds).toEqual([keeper, '']);
    } finally {
      shortClient.close();
      shortRelay.close();
    }
  });

  it('refuses a ReportVaultAttempt, Locate or EndStreams of more than 1000 devices whole, with RESOURCE_EXHAUSTED', async () => {
    const [online, other] = [device(), device()];
    const gw = `gw-${randomUUID()}`;
    await claim(online, gw, 'online-stream');
    await claim(other, gw, 'other-stream');
    const tooMany = [online, ...Array.from({ length: 1000 }, device)];
    const report = { attemptsLeft: 9, nextTryAfterMs: '0', failedAttempts: 1, destroyed: false };
    const events = await listen(gw);
    try {
      const refusal = (call: Promise<unknown>) => call.catch((thrown: unknown) => thrown);
      expect(
        await refusal(unary(client.reportVaultAttempt.bind(client), { devices: tooMany, report })),
      ).toMatchObject(oversize('devices', 1001));
      expect(await refusal(unary(relay.locate.bind(relay), { devices: tooMany }))).toMatchObject(
        oversize('devices', 1001),
      );
      expect(await refusal(unary(client.endStreams.bind(client), { devices: tooMany }))).toMatchObject(
        oversize('devices', 1001),
      );
      // Nothing of the refused calls happened: the first event on the channel is this report, and the stream stands.
      expect(await unary(client.reportVaultAttempt.bind(client), { devices: [other], report })).toEqual({
        delivered: 1,
      });
      expect(await events.next()).toMatchObject({
        device: other,
        streamId: 'other-stream',
        vaultAttemptFailed: report,
      });
      expect(await locate(online)).toEqual([{ gatewayId: gw, streamId: 'online-stream' }]);
      // At the limit, a call is served.
      expect(
        await unary(client.reportVaultAttempt.bind(client), { devices: tooMany.slice(0, 1000), report }),
      ).toEqual({ delivered: 1 });
      expect(await events.next()).toMatchObject({
        device: online,
        streamId: 'online-stream',
        vaultAttemptFailed: report,
      });
    } finally {
      events.close();
    }
  });

  it.each([
    [{ gatewayId: 'gw', streamId: 's' }, 'device: is required'],
    [
      { device: { accountId: 'a', deviceId: 1 }, gatewayId: 'gw', streamId: 's' },
      'device.account_id: is not an account id',
    ],
    [
      { device: { accountId: randomUUID(), deviceId: 0 }, gatewayId: 'gw', streamId: 's' },
      'device.device_id: must be a device id of 1 or more',
    ],
    [
      { device: { accountId: randomUUID(), deviceId: 1 }, gatewayId: 'has space', streamId: 's' },
      "gateway_id: must be 1 to 128 characters of A-Z, a-z, 0-9, '_', '.', ':', '-'",
    ],
  ])('refuses a bad claim with INVALID_ARGUMENT (%#)', async (request, details) => {
    const error = await unary(client.claimStream.bind(client), { device: undefined, ...request }).catch(
      (thrown: unknown) => thrown,
    );
    expect(error).toMatchObject({ code: status.INVALID_ARGUMENT, details });
  });
});
