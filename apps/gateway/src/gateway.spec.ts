import { randomUUID } from 'node:crypto';
import { Client, Metadata, status, type MethodDefinition, type ServiceError } from '@grpc/grpc-js';
import { CONTRACTS } from '@sotto/contracts';
import { authorizationMetadata, generateDeviceKeys, publicDeviceKeys, unary } from '@sotto/client-sdk';
import {
  AccountServiceClient,
  KeysServiceClient,
  MessagingServiceClient,
  type ConnectResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { gatewayCredentials, startTestPlatform, type Platform } from '@sotto/testing';
import { Inbox, PublicApi, type Device } from './testing/public-api';

describe('gateway, end to end through the public API', () => {
  let platform: Platform;
  let accounts: AccountServiceClient;
  let keys: KeysServiceClient;
  let messaging: MessagingServiceClient;
  let api: PublicApi;

  beforeAll(async () => {
    platform = await startTestPlatform();
    api = new PublicApi(platform.gateway);
    ({ accounts, messaging } = api);
    keys = new KeysServiceClient(platform.gateway, gatewayCredentials());
  });

  afterAll(async () => {
    keys?.close();
    api?.close();
    await platform?.stop();
  });

  const register = (username?: string): Promise<Device> => api.register(username);
  const send = (from: Device, to: Device, body: string) => api.send(from, to, body);
  const connect = (device: Device): Inbox => api.connect(device);

  it('refuses calls without credentials or with a wrong secret, and stores nothing', async () => {
    const alice = await register();
    const noCredentials = await unary(accounts.lookupUsername.bind(accounts), { username: 'anyone' }).catch(
      (error: unknown) => error,
    );
    expect(noCredentials).toMatchObject({
      code: status.UNAUTHENTICATED,
      details: 'authorization: credentials are required',
    });

    const wrong = authorizationMetadata({
      accountId: alice.accountId,
      deviceId: 1,
      deviceSecret: 'A'.repeat(43),
    });
    const bob = await register();
    const spoofed = await unary(
      messaging.send.bind(messaging),
      { destinationAccountId: bob.accountId, clientTimestampMs: '1', ephemeral: false, envelopes: [] },
      { metadata: wrong },
    ).catch((error: unknown) => error);
    expect(spoofed).toMatchObject({
      code: status.UNAUTHENTICATED,
      details: 'authorization: unknown device or wrong secret',
    });

    const inbox = connect(bob);
    expect(await inbox.next()).toEqual({ queueEmpty: {} });
    inbox.call.end();
  });

  it('authenticates every RPC except registration, recovery, vault login and sealed sends', async () => {
    // Each method of the public contract, called with an empty request and no credentials.
    const client = new Client(platform.gateway, gatewayCredentials());
    const codeOf = (method: MethodDefinition<unknown, unknown>): Promise<status> =>
      new Promise((resolve) => {
        const { path, requestSerialize: serialize, responseDeserialize: deserialize } = method;
        const settle = (error: ServiceError | null) => resolve(error ? error.code : status.OK);
        const empty = method.requestDeserialize(Buffer.alloc(0));
        if (method.requestStream) {
          const call = method.responseStream
            ? client.makeBidiStreamRequest(path, serialize, deserialize, new Metadata(), {})
            : client.makeClientStreamRequest(path, serialize, deserialize, new Metadata(), {}, settle);
          call.on('error', settle);
          call.on('data', () => undefined);
          call.on('status', ({ code }: { code: status }) => resolve(code));
          call.end();
        } else if (method.responseStream) {
          const call = client.makeServerStreamRequest(
            path,
            serialize,
            deserialize,
            empty,
            new Metadata(),
            {},
          );
          call.on('error', settle);
          call.on('data', () => undefined);
          call.on('status', ({ code }: { code: status }) => resolve(code));
        } else {
          client.makeUnaryRequest(path, serialize, deserialize, empty, new Metadata(), {}, settle);
        }
      });
    const open: string[] = [];
    try {
      for (const definition of CONTRACTS.gateway.definitions) {
        for (const method of Object.values(definition)) {
          if ((await codeOf(method)) !== status.UNAUTHENTICATED) open.push(method.path);
        }
      }
    } finally {
      client.close();
    }
    expect(open.sort()).toEqual([
      '/sotto.gateway.v1.AccountService/RecoverAccount',
      '/sotto.gateway.v1.AccountService/Register',
      // The new device of a link: its one-time token is the proof (linking.spec.ts).
      '/sotto.gateway.v1.DeviceService/CompleteLink',
      '/sotto.gateway.v1.DeviceService/CreateLink',
      '/sotto.gateway.v1.DeviceService/WaitForLink',
      // Authorised by the recipients' combined access keys (multi-recipient.spec.ts).
      '/sotto.gateway.v1.MessagingService/SendMultiRecipient',
      // Authorised by the destination's access key instead (sealed-sender.spec.ts).
      '/sotto.gateway.v1.MessagingService/SendSealed',
      '/sotto.gateway.v1.VaultService/FinishVaultLogin',
      '/sotto.gateway.v1.VaultService/StartVaultLogin',
    ]);
  });

  it('delivers what was sent while offline, in order, then says the queue is empty; acknowledged mail is gone', async () => {
    const [alice, bob] = await Promise.all([register(), register()]);
    const guids: string[] = [];
    for (const body of ['first', 'second', 'third']) guids.push(...(await send(alice, bob, body)).guids);

    // Routing is asynchronous: reconnect until the backlog is there, as a client would.
    let received: ConnectResponse[] = [];
    const deadline = Date.now() + 60_000;
    while (received.length < 3 && Date.now() < deadline) {
      const inbox = connect(bob);
      received = [];
      for (;;) {
        const message = await inbox.next();
        if (message === 'end' || message.queueEmpty) break;
        if (message.envelope) received.push(message);
      }
      inbox.call.end();
    }
    expect(received.map((message) => message.envelope!.guid)).toEqual(guids);
    expect(received.map((message) => Buffer.from(message.envelope!.content).toString())).toEqual([
      'first',
      'second',
      'third',
    ]);
    expect(received[0].envelope).toMatchObject({
      sourceAccountId: alice.accountId,
      destinationAccountId: bob.accountId,
    });

    const acking = connect(bob);
    for (let i = 0; i < 3; i++) expect((await acking.next()) as ConnectResponse).toHaveProperty('envelope');
    expect(await acking.next()).toEqual({ queueEmpty: {} });
    acking.ack(guids);
    await new Promise((resolve) => setTimeout(resolve, 500));
    acking.call.end();

    const after = connect(bob);
    expect(await after.next()).toEqual({ queueEmpty: {} });
    after.call.end();
  });

  it('pushes a message live to a connected device', async () => {
    const [alice, bob] = await Promise.all([register(), register()]);
    const inbox = connect(bob);
    expect(await inbox.next()).toEqual({ queueEmpty: {} });
    const { guids } = await send(alice, bob, 'live');
    const pushed = (await inbox.next()) as ConnectResponse;
    expect(pushed.envelope?.guid).toBe(guids[0]);
    expect(Buffer.from(pushed.envelope!.content).toString()).toBe('live');
    inbox.call.end();
  });

  it('displaces the older stream when the same device connects again', async () => {
    const bob = await register();
    const first = connect(bob);
    expect(await first.next()).toEqual({ queueEmpty: {} });
    const second = connect(bob);
    expect(await second.next()).toEqual({ queueEmpty: {} });
    expect(await first.next()).toEqual({ displaced: {} });
    expect(await first.next()).toBe('end');
    second.call.end();
  });

  it("hands out another account's bundle to an authenticated device", async () => {
    const [alice, bob] = await Promise.all([register(), register()]);
    const { bundles } = await unary(
      keys.getPreKeyBundle.bind(keys),
      { accountId: bob.accountId, deviceId: 0 },
      {
        metadata: alice.auth,
      },
    );
    expect(bundles).toHaveLength(1);
    expect(bundles[0]).toMatchObject({
      accountId: bob.accountId,
      deviceId: 1,
      registrationId: bob.registrationId,
    });
    expect(await unary(keys.getPreKeyCount.bind(keys), {}, { metadata: bob.auth })).toEqual({
      ecCount: 19,
      kyberCount: 19,
    });
  });

  it('recovers an account on a new device: the old device is signed out and its stream closed', async () => {
    const name = `u_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
    const old = await register(name);
    const credential = Buffer.alloc(32, 7);
    await expect(
      unary(accounts.setRecoveryCredential.bind(accounts), {
        recoveryCredential: credential,
        currentRecoveryCredential: Buffer.alloc(0),
      }),
    ).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    await unary(
      accounts.setRecoveryCredential.bind(accounts),
      { recoveryCredential: credential, currentRecoveryCredential: Buffer.alloc(0) },
      { metadata: old.auth },
    );
    const inbox = connect(old);
    expect(await inbox.next()).toEqual({ queueEmpty: {} });

    const fresh = generateDeviceKeys(5);
    const recovered = await unary(accounts.recoverAccount.bind(accounts), {
      username: name,
      recoveryCredential: credential,
      identityKey: Buffer.from(fresh.identity.publicKey.serialize()),
      device: publicDeviceKeys(fresh),
    });
    expect(recovered).toMatchObject({ accountId: old.accountId, deviceId: 2 });
    expect(await inbox.next()).toEqual({ displaced: {} });
    expect(await inbox.next()).toBe('end');

    await expect(
      unary(accounts.lookupUsername.bind(accounts), { username: name }, { metadata: old.auth }),
    ).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    const auth = authorizationMetadata(recovered);
    expect(
      await unary(accounts.lookupUsername.bind(accounts), { username: name }, { metadata: auth }),
    ).toEqual({
      accountId: old.accountId,
      username: name,
    });
  });

  it("names a sender's account by its username to a signed-in device only", async () => {
    const name = `u_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
    const sender = await register(name);
    const reader = await register();
    const lookup = (accountId: string, metadata?: Metadata) =>
      unary(accounts.lookupAccount.bind(accounts), { accountId }, metadata && { metadata });
    expect(await lookup(sender.accountId, reader.auth)).toEqual({
      accountId: sender.accountId,
      username: name,
    });
    await expect(lookup(sender.accountId)).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    await expect(lookup(randomUUID(), reader.auth)).rejects.toMatchObject({
      code: status.NOT_FOUND,
      details: 'account_id: no such account',
    });
  });
});
