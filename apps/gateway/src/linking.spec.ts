import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import type { IdentityKeyPair } from '@signalapp/libsignal-client';
import {
  authorizationMetadata,
  generateDeviceKeys,
  opaqueSendRequest,
  publicDeviceKeys,
  unary,
} from '@sotto/client-sdk';
import { deviceListSigningInput } from '@sotto/contracts';
import {
  DeviceListContent,
  type ListedDevice,
  type SignedDeviceList,
} from '@sotto/contracts/generated/sotto/common/v1/device_list';
import { MismatchedDevices } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import {
  AccountServiceClient,
  DeviceServiceClient,
  MessagingServiceClient,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import {
  gatewayCredentials,
  outcome,
  startGatewayFor,
  startTcpProxy,
  startTestPlatform,
  type Platform,
  type TestService,
} from '@sotto/testing';

// Linking a device and the account's signed device list, played through the public API of two
// gateways: the whole link, and every way a stranger, a stale device or a server-made list is refused.

/** An account as its devices know it: the shared identity key, its devices and the list's version. */
interface Account {
  identity: IdentityKeyPair;
  username: string;
  accountId: string;
  devices: Map<number, { registrationId: number; auth: Metadata }>;
  version: number;
}

const newName = (): string => `u_${randomUUID().replace(/-/g, '').slice(0, 12)}`;

/** A list of these devices, signed by `identity` the way the account's devices sign one. */
function signedList(
  identity: IdentityKeyPair,
  accountId: string,
  version: number,
  devices: readonly ListedDevice[],
): SignedDeviceList {
  const content = DeviceListContent.encode({
    accountId,
    version: String(version),
    devices: [...devices].sort((a, b) => a.deviceId - b.deviceId),
    signedAtMs: String(Date.now()),
  }).finish();
  return {
    content: Buffer.from(content),
    signature: Buffer.from(identity.privateKey.sign(deviceListSigningInput(content))),
  };
}

const listed = (account: Account, extra: ListedDevice[] = [], without: number[] = []): ListedDevice[] => [
  ...[...account.devices]
    .filter(([deviceId]) => !without.includes(deviceId))
    .map(([deviceId, device]) => ({ deviceId, registrationId: device.registrationId })),
  ...extra,
];

describe('linked devices and signed device lists, through the public API of two gateways', () => {
  let platform: Platform;
  let second: TestService;
  // A third, with rate limits on and small buckets, reached from addresses no other test uses.
  let limited: TestService;
  const clients: { close(): void }[] = [];
  const client = <C extends { close(): void }>(made: C): C => {
    clients.push(made);
    return made;
  };
  let accounts: AccountServiceClient;
  let devices: DeviceServiceClient;
  let messaging: MessagingServiceClient;
  let devicesThere: DeviceServiceClient;

  beforeAll(async () => {
    platform = await startTestPlatform();
    [second, limited] = await Promise.all([
      startGatewayFor(platform),
      startGatewayFor(platform, {
        SOTTO_RATE_LIMITS: 'on',
        RATE_LIMIT_CREATE_LINK_PER_SOURCE: '3/1h',
        RATE_LIMIT_APPROVE_LINK_PER_ACCOUNT: '2/1h',
      }),
    ]);
    accounts = client(new AccountServiceClient(platform.gateway, gatewayCredentials()));
    devices = client(new DeviceServiceClient(platform.gateway, gatewayCredentials()));
    messaging = client(new MessagingServiceClient(platform.gateway, gatewayCredentials()));
    devicesThere = client(new DeviceServiceClient(second.grpc, gatewayCredentials()));
  });

  afterAll(async () => {
    clients.forEach((made) => made.close());
    await Promise.all([second?.stop(), limited?.stop()]);
    await platform?.stop();
  });

  /** Registers an account and publishes its first list, as a client does right after Register. */
  async function registered(): Promise<Account> {
    const keys = generateDeviceKeys(5);
    const username = newName();
    const made = await unary(accounts.register.bind(accounts), {
      username,
      identityKey: Buffer.from(keys.identity.publicKey.serialize()),
      device: publicDeviceKeys(keys),
    });
    const account: Account = {
      identity: keys.identity,
      username,
      accountId: made.accountId,
      devices: new Map([
        [made.deviceId, { registrationId: keys.registrationId, auth: authorizationMetadata(made) }],
      ]),
      version: 1,
    };
    await unary(
      devices.setDeviceList.bind(devices),
      { deviceList: signedList(account.identity, account.accountId, 1, listed(account)) },
      { metadata: authOf(account) },
    );
    return account;
  }

  const authOf = (account: Account, deviceId = 1): Metadata => {
    const device = account.devices.get(deviceId);
    if (!device) throw new Error(`no device ${deviceId}`);
    return device.auth;
  };

  const createLink = () => unary(devices.createLink.bind(devices), {});
  const approve = (account: Account, token: Uint8Array, provisioning: Uint8Array = randomBytes(64)) =>
    unary(devices.approveLink.bind(devices), { token, provisioning }, { metadata: authOf(account) });

  /** The new device's half of a link once approved: keys under the account identity, the list with it. */
  function completion(account: Account, token: Uint8Array, deviceId: number) {
    const keys = generateDeviceKeys(5, account.identity);
    const list = signedList(
      account.identity,
      account.accountId,
      account.version + 1,
      listed(account, [{ deviceId, registrationId: keys.registrationId }]),
    );
    return { keys, request: { token, device: publicDeviceKeys(keys), deviceList: list, name: 'laptop' } };
  }

  /** Links one more device to the account, the whole way; returns its id. */
  async function link(account: Account, name = 'laptop'): Promise<number> {
    const { token } = await createLink();
    const { deviceId } = await approve(account, token);
    const { keys, request } = completion(account, token, deviceId);
    const done = await unary(devices.completeLink.bind(devices), { ...request, name });
    account.devices.set(deviceId, { registrationId: keys.registrationId, auth: authorizationMetadata(done) });
    account.version += 1;
    return deviceId;
  }

  /** What a contact's Send to the account's device 1 alone is answered. */
  const sendToFirstDevice = (from: Account, to: Account) =>
    unary(
      messaging.send.bind(messaging),
      opaqueSendRequest(
        { accountId: to.accountId, registrationId: to.devices.get(1)!.registrationId },
        randomBytes(16),
      ),
      { metadata: authOf(from) },
    ).then(
      () => ({ accepted: true as const }),
      (rejected: unknown) => {
        const error = rejected as ServiceError;
        const trailer = error.metadata.get('sotto-mismatched-devices-bin')[0];
        return {
          code: error.code,
          mismatch: Buffer.isBuffer(trailer) ? MismatchedDevices.decode(trailer) : undefined,
        };
      },
    );

  it('links a device: approval on one gateway wakes the wait on the other, and contacts must then encrypt to it', async () => {
    const owner = await registered();
    const contact = await registered();
    // The relay caches the owner's one device.
    expect(await sendToFirstDevice(contact, owner)).toEqual({ accepted: true });

    const { token, expiresAtMs } = await createLink();
    expect(token).toHaveLength(32);
    expect(Number(expiresAtMs)).toBeGreaterThan(Date.now() + 500_000);
    const waiting = unary(devicesThere.waitForLink.bind(devicesThere), { token }, { deadlineMs: 60_000 });
    const provisioning = randomBytes(200_000);
    const approvedAt = Date.now();
    const { deviceId } = await approve(owner, token, provisioning);
    expect(deviceId).toBe(2);
    const waited = await waiting;
    // Woken by the approving gateway's notice, not the slow poll.
    expect(Date.now() - approvedAt).toBeLessThan(3_000);
    expect(waited.accountId).toBe(owner.accountId);
    expect(waited.deviceId).toBe(2);
    expect(Buffer.from(waited.provisioning).equals(provisioning)).toBe(true);

    const { keys, request } = completion(owner, token, deviceId);
    const done = await unary(devicesThere.completeLink.bind(devicesThere), {
      ...request,
      name: 'Work laptop 💻',
    });
    expect(done).toMatchObject({ accountId: owner.accountId, deviceId: 2 });
    owner.devices.set(2, { registrationId: keys.registrationId, auth: authorizationMetadata(done) });

    // The new device's credential works, and it sees both devices with their names and times.
    const listing = await unary(devices.listDevices.bind(devices), {}, { metadata: authOf(owner, 2) });
    expect(listing.devices.map((device) => [device.deviceId, device.name])).toEqual([
      [1, ''],
      [2, 'Work laptop 💻'],
    ]);
    for (const device of listing.devices) {
      expect(Number(device.linkedAtMs)).toBeGreaterThan(approvedAt - 120_000);
      expect(Number(device.linkedAtMs)).toBeLessThanOrEqual(Date.now());
    }
    expect(listing.devices.map((device) => device.lastSeenMs)).toEqual(['0', '0']);
    // The new device opens its stream: seen today, kept to the day (midnight UTC).
    const stream = messaging.connect(authOf(owner, 2));
    stream.on('error', () => undefined);
    await new Promise<void>((resolve) => stream.once('data', () => resolve()));
    stream.end();
    const seen = await unary(devices.listDevices.bind(devices), {}, { metadata: authOf(owner) });
    const midnight = new Date();
    midnight.setUTCHours(0, 0, 0, 0);
    expect(seen.devices.map((device) => device.lastSeenMs)).toEqual(['0', String(midnight.getTime())]);

    // Anyone signed in gets the list exactly as it was signed.
    const stored = await unary(
      devices.getDeviceList.bind(devices),
      { accountId: owner.accountId },
      { metadata: authOf(contact) },
    );
    expect(Buffer.from(stored.deviceList!.content).equals(request.deviceList.content)).toBe(true);
    expect(Buffer.from(stored.deviceList!.signature).equals(request.deviceList.signature)).toBe(true);
    expect(DeviceListContent.decode(stored.deviceList!.content).devices).toEqual([
      { deviceId: 1, registrationId: owner.devices.get(1)!.registrationId },
      { deviceId: 2, registrationId: keys.registrationId },
    ]);

    // The relay dropped its cached list: a Send to device 1 alone now misses device 2.
    expect(await sendToFirstDevice(contact, owner)).toEqual({
      code: status.FAILED_PRECONDITION,
      mismatch: { missingDeviceIds: [2], extraDeviceIds: [], staleDeviceIds: [] },
    });

    // The token is used up.
    expect((await outcome(createLinkUse(token)))?.code).toBe(status.NOT_FOUND);
  });

  const createLinkUse = (token: Uint8Array) =>
    unary(devices.waitForLink.bind(devices), { token }, { deadlineMs: 5_000 });

  it('answers DEADLINE_EXCEEDED when the wait runs out before any approval, and the token still works after', async () => {
    const owner = await registered();
    const { token } = await createLink();
    const error = await outcome(
      unary(devicesThere.waitForLink.bind(devicesThere), { token }, { deadlineMs: 1_500 }),
    );
    expect(error?.code).toBe(status.DEADLINE_EXCEEDED);
    await approve(owner, token);
    const waited = await unary(devices.waitForLink.bind(devices), { token }, { deadlineMs: 5_000 });
    expect(waited.accountId).toBe(owner.accountId);
  });
  /** What the account's devices and list are now, as its device 1 and a stranger see them. */
  async function state(account: Account) {
    const [listing, list] = await Promise.all([
      unary(devices.listDevices.bind(devices), {}, { metadata: authOf(account) }),
      unary(
        devices.getDeviceList.bind(devices),
        { accountId: account.accountId },
        { metadata: authOf(account) },
      ),
    ]);
    return {
      devices: listing.devices.map((device) => [device.deviceId, device.name]),
      list: Buffer.from(list.deviceList?.content ?? []).toString('hex'),
    };
  }

  describe('refusals, each changing nothing', () => {
    it('refuses unknown, malformed and used tokens on every step, and completing before approval', async () => {
      const owner = await registered();
      const before = await state(owner);
      const unknown = randomBytes(32);
      const wait = (token: Uint8Array) =>
        outcome(unary(devices.waitForLink.bind(devices), { token }, { deadlineMs: 5_000 }));
      const complete = (token: Uint8Array, deviceId = 2) =>
        outcome(unary(devices.completeLink.bind(devices), completion(owner, token, deviceId).request));
      for (const refused of [
        await wait(unknown),
        await outcome(approve(owner, unknown)),
        await complete(unknown),
      ]) {
        expect([refused?.code, refused?.details]).toEqual([
          status.NOT_FOUND,
          'token: unknown, expired or already used',
        ]);
      }
      for (const refused of [
        await wait(randomBytes(31)),
        await outcome(approve(owner, randomBytes(33))),
        await complete(new Uint8Array()),
      ]) {
        expect([refused?.code, refused?.details]).toEqual([
          status.INVALID_ARGUMENT,
          'token: must be 32 bytes',
        ]);
      }

      const { token } = await createLink();
      expect(await complete(token)).toMatchObject({
        code: status.FAILED_PRECONDITION,
        details: 'token: not approved yet; WaitForLink until it is',
      });
      const { deviceId } = await approve(owner, token);
      // Approved once: a second approval (by this account or another) finds no token to approve.
      expect((await outcome(approve(owner, token)))?.code).toBe(status.NOT_FOUND);
      expect((await outcome(approve(await registered(), token)))?.code).toBe(status.NOT_FOUND);
      expect(await state(owner)).toEqual(before);

      const { keys, request } = completion(owner, token, deviceId);
      const done = await unary(devices.completeLink.bind(devices), request);
      owner.devices.set(deviceId, { registrationId: keys.registrationId, auth: authorizationMetadata(done) });
      owner.version += 1;
      const after = await state(owner);
      // Used up: nothing more can be done with it.
      expect((await wait(token))?.code).toBe(status.NOT_FOUND);
      expect((await outcome(approve(owner, token)))?.code).toBe(status.NOT_FOUND);
      expect((await outcome(unary(devices.completeLink.bind(devices), request)))?.code).toBe(
        status.NOT_FOUND,
      );
      expect(await state(owner)).toEqual(after);
    });

    it('refuses a completion whose list is not the account identity key’s list of the devices it will have', async () => {
      const owner = await registered();
      await link(owner);
      const before = await state(owner);
      const { token } = await createLink();
      const { deviceId } = await approve(owner, token);
      const { keys, request } = completion(owner, token, deviceId);
      const newDevice = { deviceId, registrationId: keys.registrationId };
      const current = listed(owner);
      const next = owner.version + 1;
      const stranger = generateDeviceKeys(0).identity;
      const refusals: [string, SignedDeviceList, status, RegExp][] = [
        [
          'signed by another key',
          signedList(stranger, owner.accountId, next, [...current, newDevice]),
          status.INVALID_ARGUMENT,
          /^device_list\.signature: does not verify/,
        ],
        [
          'a version two above',
          signedList(owner.identity, owner.accountId, next + 1, [...current, newDevice]),
          status.FAILED_PRECONDITION,
          /^device_list\.content\.version: is 4; this change needs 3/,
        ],
        [
          'the stored version again',
          signedList(owner.identity, owner.accountId, next - 1, [...current, newDevice]),
          status.FAILED_PRECONDITION,
          /^device_list\.content\.version/,
        ],
        [
          'an existing device left out',
          signedList(owner.identity, owner.accountId, next, [current[0], newDevice]),
          status.FAILED_PRECONDITION,
          /^device_list\.content\.devices: lists/,
        ],
        [
          'a ghost device added',
          signedList(owner.identity, owner.accountId, next, [
            ...current,
            newDevice,
            { deviceId: 99, registrationId: 7 },
          ]),
          status.FAILED_PRECONDITION,
          /^device_list\.content\.devices: lists/,
        ],
        [
          'the new device under another registration id',
          signedList(owner.identity, owner.accountId, next, [
            ...current,
            { deviceId, registrationId: (keys.registrationId % 0x3fff) + 1 },
          ]),
          status.FAILED_PRECONDITION,
          /^device_list\.content\.devices: lists/,
        ],
        [
          'another account’s id',
          signedList(owner.identity, randomUUID(), next, [...current, newDevice]),
          status.INVALID_ARGUMENT,
          /^device_list\.content\.account_id: is not this account/,
        ],
        [
          'garbage',
          { content: randomBytes(80), signature: randomBytes(64) },
          status.INVALID_ARGUMENT,
          /^device_list\.(content|signature): /,
        ],
        [
          'no list',
          { content: Buffer.alloc(0), signature: Buffer.alloc(0) },
          status.INVALID_ARGUMENT,
          /^device_list\.content: is required/,
        ],
      ];
      for (const [what, deviceList, code, details] of refusals) {
        const refused = await outcome(unary(devices.completeLink.bind(devices), { ...request, deviceList }));
        expect({ what, code: refused?.code, details: refused?.details }).toEqual({
          what,
          code,
          details: expect.stringMatching(details) as unknown,
        });
      }
      // Keys not signed by the account identity key are refused the same way.
      const foreignKeys = publicDeviceKeys(generateDeviceKeys(2));
      expect(
        await outcome(unary(devices.completeLink.bind(devices), { ...request, device: foreignKeys })),
      ).toMatchObject({
        code: status.INVALID_ARGUMENT,
        details: expect.stringMatching(/^device\.signed_pre_key\.signature/) as unknown,
      });
      for (const name of ['line\nbreak', 'bell\u0007', 'x'.repeat(65)]) {
        expect((await outcome(unary(devices.completeLink.bind(devices), { ...request, name })))?.code).toBe(
          status.INVALID_ARGUMENT,
        );
      }
      expect(await state(owner)).toEqual(before);
      // The token was not spent by any of it.
      await unary(devices.completeLink.bind(devices), request);
      expect((await state(owner)).devices).toHaveLength(3);
    });

    it('refuses provisioning over 1 MiB, or none', async () => {
      const owner = await registered();
      const { token } = await createLink();
      expect(await outcome(approve(owner, token, Buffer.alloc(1024 * 1024 + 1)))).toMatchObject({
        code: status.RESOURCE_EXHAUSTED,
        details: 'provisioning: at most 1048576 bytes',
      });
      expect((await outcome(approve(owner, token, Buffer.alloc(0))))?.code).toBe(status.INVALID_ARGUMENT);
      // The token is still unapproved.
      await approve(owner, token, Buffer.alloc(1024 * 1024));
    });

    it('refuses a seventh device at approval, and at completion when two approvals raced', async () => {
      const owner = await registered();
      for (let linked = 0; linked < 4; linked += 1) await link(owner);
      // Five devices: two links are approved, one completes, the other is refused.
      const first = await createLink();
      const second = await createLink();
      const firstId = (await approve(owner, first.token)).deviceId;
      const secondId = (await approve(owner, second.token)).deviceId;
      expect(secondId).not.toBe(firstId);
      const late = completion(owner, second.token, secondId);
      const { keys, request } = completion(owner, first.token, firstId);
      const done = await unary(devices.completeLink.bind(devices), request);
      owner.devices.set(firstId, { registrationId: keys.registrationId, auth: authorizationMetadata(done) });
      owner.version += 1;
      const full = await state(owner);
      expect(full.devices).toHaveLength(6);
      const limitMessage = 'the account already has 6 devices, the most it may have; remove one first';
      expect(await outcome(unary(devices.completeLink.bind(devices), late.request))).toMatchObject({
        code: status.FAILED_PRECONDITION,
        details: limitMessage,
      });
      const third = await createLink();
      expect(await outcome(approve(owner, third.token))).toMatchObject({
        code: status.FAILED_PRECONDITION,
        details: limitMessage,
      });
      expect(await state(owner)).toEqual(full);
    });

    it('refuses a SetDeviceList that is not of exactly the account’s devices, above the stored version', async () => {
      const owner = await registered();
      await link(owner);
      const before = await state(owner);
      const set = (deviceList: SignedDeviceList) =>
        outcome(unary(devices.setDeviceList.bind(devices), { deviceList }, { metadata: authOf(owner, 2) }));
      const current = listed(owner);
      expect(
        await set(signedList(owner.identity, owner.accountId, owner.version + 1, current.slice(1))),
      ).toMatchObject({
        code: status.FAILED_PRECONDITION,
      });
      expect(
        await set(
          signedList(owner.identity, owner.accountId, owner.version + 1, [
            ...current,
            { deviceId: 50, registrationId: 5 },
          ]),
        ),
      ).toMatchObject({ code: status.FAILED_PRECONDITION });
      expect(await set(signedList(owner.identity, owner.accountId, owner.version, current))).toMatchObject({
        code: status.FAILED_PRECONDITION,
      });
      expect(
        await set(signedList(generateDeviceKeys(0).identity, owner.accountId, owner.version + 1, current)),
      ).toMatchObject({ code: status.INVALID_ARGUMENT });
      expect(await state(owner)).toEqual(before);
      // A higher version of the same devices is taken: what a device does after recovery.
      expect(
        await set(signedList(owner.identity, owner.accountId, owner.version + 5, current)),
      ).toBeUndefined();
    });

    it('refuses removing the last device, a device of another account, or one the list still names', async () => {
      const owner = await registered();
      const other = await registered();
      await link(other);
      const otherBefore = await state(other);
      const remove = (account: Account, deviceId: number, deviceList: SignedDeviceList) =>
        outcome(
          unary(devices.removeDevice.bind(devices), { deviceId, deviceList }, { metadata: authOf(account) }),
        );
      expect(await remove(owner, 1, signedList(owner.identity, owner.accountId, 2, []))).toMatchObject({
        code: status.FAILED_PRECONDITION,
        details: "device_id: is the account's only device; an account keeps at least one",
      });
      // The other account's device 2 is not the owner's, whatever list comes with it.
      expect(
        await remove(owner, 2, signedList(owner.identity, owner.accountId, 2, listed(owner))),
      ).toMatchObject({
        code: status.NOT_FOUND,
      });
      expect(
        await remove(
          owner,
          2,
          signedList(other.identity, other.accountId, other.version + 1, listed(other, [], [2])),
        ),
      ).toMatchObject({ code: status.NOT_FOUND });
      // The other account's own device, with a list that still names it.
      expect(
        await remove(other, 2, signedList(other.identity, other.accountId, other.version + 1, listed(other))),
      ).toMatchObject({ code: status.FAILED_PRECONDITION });
      expect(await state(other)).toEqual(otherBefore);
    });
  });

  it('removes a device: its credential stops working, its open stream ends, and the list without it is served', async () => {
    const owner = await registered();
    const removed = await link(owner);
    const stream = messaging.connect(authOf(owner, removed));
    const ended = new Promise<ServiceError | undefined>((resolve) => {
      stream.on('data', () => undefined);
      stream.on('error', (error: ServiceError) => resolve(error));
      stream.on('end', () => resolve(undefined));
    });
    // The stream is open once its queue is drained.
    await new Promise<void>((resolve) => stream.once('data', () => resolve()));
    const deviceList = signedList(
      owner.identity,
      owner.accountId,
      owner.version + 1,
      listed(owner, [], [removed]),
    );
    await unary(
      devices.removeDevice.bind(devices),
      { deviceId: removed, deviceList },
      { metadata: authOf(owner) },
    );
    await ended;
    const refused = await outcome(
      unary(devices.listDevices.bind(devices), {}, { metadata: authOf(owner, removed) }),
    );
    expect(refused?.code).toBe(status.UNAUTHENTICATED);
    const stored = await unary(
      devices.getDeviceList.bind(devices),
      { accountId: owner.accountId },
      { metadata: authOf(owner) },
    );
    expect(Buffer.from(stored.deviceList!.content).equals(deviceList.content)).toBe(true);
    expect((await state(owner)).devices).toEqual([[1, '']]);
  });

  it('lets no link made before a recovery live on: an old approval is neither waited on nor completed, old devices approve nothing', async () => {
    const owner = await registered();
    const credential = randomBytes(32);
    await unary(
      accounts.setRecoveryCredential.bind(accounts),
      { recoveryCredential: credential, currentRecoveryCredential: Buffer.alloc(0) },
      { metadata: authOf(owner) },
    );
    // Before the recovery: device 1 approves one code (its provisioning waits for the new device)
    // and another code is made, not yet approved.
    const approved = await createLink();
    const { deviceId: reserved } = await approve(owner, approved.token);
    const pending = await createLink();

    const keys = generateDeviceKeys(5);
    const recovered = await unary(accounts.recoverAccount.bind(accounts), {
      username: owner.username,
      recoveryCredential: credential,
      identityKey: Buffer.from(keys.identity.publicKey.serialize()),
      device: publicDeviceKeys(keys),
    });
    const stale = authOf(owner);
    owner.identity = keys.identity;
    owner.devices = new Map([
      [recovered.deviceId, { registrationId: keys.registrationId, auth: authorizationMetadata(recovered) }],
    ]);
    const now = authOf(owner, recovered.deviceId);
    // The recovered device has not published its list yet: none is served, and its one device is listed.
    const unchanged = async () => {
      expect(
        await outcome(
          unary(devices.getDeviceList.bind(devices), { accountId: owner.accountId }, { metadata: now }),
        ),
      ).toMatchObject({ code: status.NOT_FOUND });
      const listing = await unary(devices.listDevices.bind(devices), {}, { metadata: now });
      expect(listing.devices.map((device) => device.deviceId)).toEqual([recovered.deviceId]);
    };
    await unchanged();

    // The approved code is gone: nothing to wait for, on either gateway, and no completion, not even
    // one whose keys and list the account's new identity key signed.
    for (const at of [devices, devicesThere]) {
      expect(
        await outcome(unary(at.waitForLink.bind(at), { token: approved.token }, { deadlineMs: 5_000 })),
      ).toMatchObject({ code: status.NOT_FOUND, details: 'token: unknown, expired or already used' });
    }
    const { request } = completion(owner, approved.token, reserved);
    expect(await outcome(unary(devices.completeLink.bind(devices), request))).toMatchObject({
      code: status.NOT_FOUND,
      details: 'token: unknown, expired or already used',
    });
    // The signed-out device approves nothing.
    expect(
      await outcome(
        unary(
          devices.approveLink.bind(devices),
          { token: pending.token, provisioning: randomBytes(64) },
          { metadata: stale },
        ),
      ),
    ).toMatchObject({ code: status.UNAUTHENTICATED });
    await unchanged();
  });

  describe('rate limits', () => {
    /** A client of the limited gateway from a loopback address no other test uses. */
    async function limitedFromFreshAddress(): Promise<DeviceServiceClient> {
      const address = `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
      const proxy = await startTcpProxy(limited.grpc, { from: address });
      clients.push({ close: () => void proxy.close() });
      return client(new DeviceServiceClient(proxy.address, gatewayCredentials()));
    }

    it('refuses a flood of link codes from one address, and not another address', async () => {
      const flooding = await limitedFromFreshAddress();
      const create = (at: DeviceServiceClient) => outcome(unary(at.createLink.bind(at), {}));
      for (let made = 0; made < 3; made += 1) expect(await create(flooding)).toBeUndefined();
      const refused = await create(flooding);
      expect(refused?.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(refused?.details).toMatch(/^too many link codes made from this address; retry in \d+ s$/);
      expect(Number(refused?.metadata.get('retry-after-ms')[0])).toBeGreaterThan(0);
      expect(await create(await limitedFromFreshAddress())).toBeUndefined();
    });

    it('refuses approvals past the account’s budget', async () => {
      const owner = await registered();
      const at = await limitedFromFreshAddress();
      const approveThere = async () => {
        const { token } = await unary(at.createLink.bind(at), {});
        return outcome(
          unary(
            at.approveLink.bind(at),
            { token, provisioning: randomBytes(8) },
            { metadata: authOf(owner) },
          ),
        );
      };
      expect(await approveThere()).toBeUndefined();
      expect(await approveThere()).toBeUndefined();
      expect(await approveThere()).toMatchObject({
        code: status.RESOURCE_EXHAUSTED,
        details: expect.stringMatching(
          /^too many links approved by this account; retry in \d+ s$/,
        ) as unknown,
      });
    });
  });
});
