import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { status } from '@grpc/grpc-js';
import type { IdentityKeyPair } from '@signalapp/libsignal-client';
import { generateDeviceKeys, publicDeviceKeys, unary } from '@sotto/client-sdk';
import { deviceListSigningInput } from '@sotto/contracts';
import {
  DeviceListContent,
  type ListedDevice,
  type SignedDeviceList,
} from '@sotto/contracts/generated/sotto/common/v1/device_list';
import { DirectoryServiceClient } from '@sotto/contracts/generated/sotto/directory/v1/directory';
import { callerCredentials, outcome, startTestService, type TestService } from '@sotto/testing';

// The directory's side of linked devices, called as the gateway calls it: tokens that expire,
// recovery and the stored list's version, and changes of one account racing each other.

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
  return { content, signature: identity.privateKey.sign(deviceListSigningInput(content)) };
}

describe('prekey-directory: linked devices', () => {
  let service: TestService;
  let client: DirectoryServiceClient;
  // One whose link tokens live a second.
  let shortLived: TestService;
  let shortLivedClient: DirectoryServiceClient;

  beforeAll(async () => {
    [service, shortLived] = await Promise.all([
      startTestService('prekey-directory'),
      startTestService('prekey-directory', { LINK_TOKEN_TTL_SECONDS: '1' }),
    ]);
    client = new DirectoryServiceClient(service.grpc, callerCredentials('gateway'));
    shortLivedClient = new DirectoryServiceClient(shortLived.grpc, callerCredentials('gateway'));
  });

  afterAll(async () => {
    client?.close();
    shortLivedClient?.close();
    await Promise.all([service?.stop(), shortLived?.stop()]);
  });

  async function account(at = client) {
    const keys = generateDeviceKeys(2);
    const made = await unary(at.register.bind(at), {
      username: `u_${randomUUID().slice(0, 8)}`,
      identityKey: keys.identity.publicKey.serialize(),
      device: publicDeviceKeys(keys),
    });
    const devices: ListedDevice[] = [{ deviceId: 1, registrationId: keys.registrationId }];
    await unary(at.setDeviceList.bind(at), {
      accountId: made.accountId,
      deviceList: signedList(keys.identity, made.accountId, 1, devices),
    });
    return { ...made, identity: keys.identity, devices, version: 1 };
  }

  async function linked(owner: Awaited<ReturnType<typeof account>>): Promise<void> {
    const { token } = await unary(client.createLink.bind(client), {});
    const { deviceId } = await unary(client.approveLink.bind(client), {
      accountId: owner.accountId,
      token,
      provisioning: randomBytes(8),
    });
    const keys = generateDeviceKeys(2, owner.identity);
    const devices = [...owner.devices, { deviceId, registrationId: keys.registrationId }];
    await unary(client.completeLink.bind(client), {
      token,
      device: publicDeviceKeys(keys),
      deviceList: signedList(owner.identity, owner.accountId, owner.version + 1, devices),
      name: '',
    });
    owner.devices = devices;
    owner.version += 1;
  }

  it('refuses an expired token on every step', async () => {
    const client = shortLivedClient;
    const owner = await account(client);
    const { token, expiresAtMs } = await unary(client.createLink.bind(client), {});
    const approved = await unary(client.createLink.bind(client), {});
    await unary(client.approveLink.bind(client), {
      accountId: owner.accountId,
      token: approved.token,
      provisioning: randomBytes(8),
    });
    // Tokens live LINK_TOKEN_TTL_SECONDS (1 s here): nothing to await but the clock.
    await delay(Math.max(0, Number(expiresAtMs) - Date.now()) + 200);
    for (const expired of [token, approved.token]) {
      const refusals = await Promise.all([
        outcome(unary(client.getLink.bind(client), { token: expired })),
        outcome(
          unary(client.approveLink.bind(client), {
            accountId: owner.accountId,
            token: expired,
            provisioning: randomBytes(8),
          }),
        ),
        outcome(
          unary(client.completeLink.bind(client), {
            token: expired,
            device: publicDeviceKeys(generateDeviceKeys(1, owner.identity)),
            deviceList: signedList(owner.identity, owner.accountId, 2, owner.devices),
            name: '',
          }),
        ),
      ]);
      expect(refusals.map((refused) => refused?.code)).toEqual([
        status.NOT_FOUND,
        status.NOT_FOUND,
        status.NOT_FOUND,
      ]);
    }
    const listing = await unary(client.listDeviceDetails.bind(client), { accountId: owner.accountId });
    expect(listing.devices.map((device) => device.deviceId)).toEqual([1]);
  });

  it('withdraws the list on recovery but keeps its version, so the recovered device publishes above it', async () => {
    const owner = await account();
    await linked(owner);
    const credential = randomBytes(32);
    await unary(client.setRecoveryCredential.bind(client), {
      accountId: owner.accountId,
      recoveryCredential: credential,
      currentRecoveryCredential: new Uint8Array(),
    });
    const username = (await unary(client.lookupAccount.bind(client), { accountId: owner.accountId }))
      .username;
    const keys = generateDeviceKeys(2);
    const recovered = await unary(client.recoverAccount.bind(client), {
      username,
      recoveryCredential: credential,
      identityKey: keys.identity.publicKey.serialize(),
      device: publicDeviceKeys(keys),
    });
    expect(recovered.signedOutDeviceIds).toEqual([1, 2]);
    expect(
      (await outcome(unary(client.getDeviceList.bind(client), { accountId: owner.accountId })))?.code,
    ).toBe(status.NOT_FOUND);
    const devices = [{ deviceId: recovered.deviceId, registrationId: keys.registrationId }];
    // The stored version was 2: a list at 2 is stale, even signed by the new key; 3 is taken.
    const stale = await outcome(
      unary(client.setDeviceList.bind(client), {
        accountId: owner.accountId,
        deviceList: signedList(keys.identity, owner.accountId, 2, devices),
      }),
    );
    expect(stale?.code).toBe(status.FAILED_PRECONDITION);
    // The old identity key no longer signs for the account.
    const old = await outcome(
      unary(client.setDeviceList.bind(client), {
        accountId: owner.accountId,
        deviceList: signedList(owner.identity, owner.accountId, 3, devices),
      }),
    );
    expect(old?.code).toBe(status.INVALID_ARGUMENT);
    const list = signedList(keys.identity, owner.accountId, 3, devices);
    await unary(client.setDeviceList.bind(client), { accountId: owner.accountId, deviceList: list });
    const stored = await unary(client.getDeviceList.bind(client), { accountId: owner.accountId });
    expect(Buffer.from(stored.deviceList!.content).equals(Buffer.from(list.content))).toBe(true);
  });

  it('lets only one of two racing changes of an account win', async () => {
    const owner = await account();
    await linked(owner);
    await linked(owner);
    // Two devices each remove another with a list at the same next version: one wins, the other is stale.
    const remove = (deviceId: number) =>
      outcome(
        unary(client.removeDevice.bind(client), {
          accountId: owner.accountId,
          deviceId,
          deviceList: signedList(
            owner.identity,
            owner.accountId,
            owner.version + 1,
            owner.devices.filter((device) => device.deviceId !== deviceId),
          ),
        }),
      );
    const results = await Promise.all([remove(2), remove(3)]);
    expect(results.filter((result) => result === undefined)).toHaveLength(1);
    expect(results.find((result) => result !== undefined)?.code).toBe(status.FAILED_PRECONDITION);
    const listing = await unary(client.listDeviceDetails.bind(client), { accountId: owner.accountId });
    expect(listing.devices).toHaveLength(2);
  });
});
