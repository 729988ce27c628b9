import { randomBytes, randomUUID } from 'node:crypto';
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
  startTestPlatform,
  startTestService,
  type Platform,
  type TestService,
} from '@sotto/testing';

// Linking a device and the account's signed device list, played through the public API of two
// gateways: the whole link, and every way a stranger, a stale device or a server-made list is refused.

/** An account as its devices know it: the shared identity key, its devices and the list's version. */
interface Account {
  identity: IdentityKeyPair;
  accountId: string;
  devices: Map<number, { registrationId: number; auth: Metadata }>;
  version: number;
}

const newName = (): string => `u_${randomUUID().replace(/-/g, '').slice(0, 12)}`;

/** The error a call ended with, or undefined if it succeeded. */
const outcome = (call: Promise<unknown>): Promise<ServiceError | undefined> =>
  call.then(
    () => undefined,
    (error: unknown) => error as ServiceError,
  );

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
    second = await startTestService('gateway', {
      PREKEY_DIRECTORY_ADDR: platform.services['prekey-directory'].grpc,
      MESSAGE_RELAY_ADDR: platform.services['message-relay'].grpc,
      PRESENCE_ADDR: platform.services.presence.grpc,
      BACKUP_STORE_ADDR: platform.services['backup-store'].grpc,
      KEY_VAULT_ADDR: platform.services['key-vault'].grpc,
    });
    accounts = client(new AccountServiceClient(platform.gateway, gatewayCredentials()));
    devices = client(new DeviceServiceClient(platform.gateway, gatewayCredentials()));
    messaging = client(new MessagingServiceClient(platform.gateway, gatewayCredentials()));
    devicesThere = client(new DeviceServiceClient(second.grpc, gatewayCredentials()));
  });

  afterAll(async () => {
    clients.forEach((made) => made.close());
    await second?.stop();
    await platform?.stop();
  });

  /** Registers an account and publishes its first list, as a client does right after Register. */
  async function registered(): Promise<Account> {
    const keys = generateDeviceKeys(5);
    const made = await unary(accounts.register.bind(accounts), {
      username: newName(),
      identityKey: Buffer.from(keys.identity.publicKey.serialize()),
      device: publicDeviceKeys(keys),
    });
    const account: Account = {
      identity: keys.identity,
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
});
