import { randomBytes, randomUUID } from 'node:crypto';
import { status, type ServiceError } from '@grpc/grpc-js';
import { PublicKey } from '@signalapp/libsignal-client';
import {
  LAST_RESORT_KYBER_ID,
  generateDeviceKeys,
  generateOneTimeKeys,
  publicDeviceKeys,
  unary,
} from '@sotto/client-sdk';
import { unidentifiedAccessChanges } from '@sotto/contracts';
import { DirectoryServiceClient } from '@sotto/contracts/generated/sotto/directory/v1/directory';
import { subscribe } from '@sotto/platform/redis';
import { callerCredentials, startTestService, testRedis, type TestService } from '@sotto/testing';
import type { Redis } from 'ioredis';

function username(): string {
  return `user_${randomUUID().slice(0, 8)}`;
}

async function refusal(promise: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await promise;
  } catch (error) {
    const { code, details } = error as ServiceError;
    return { code, details };
  }
  throw new Error('expected the call to be refused');
}

describe('prekey-directory', () => {
  let service: TestService;
  let limited: TestService;
  let client: DirectoryServiceClient;
  let redis: Redis;

  beforeAll(async () => {
    [service, limited] = await Promise.all([
      startTestService('prekey-directory', { PREKEY_FETCH_LIMIT: '1000' }),
      startTestService('prekey-directory', { SOTTO_RATE_LIMITS: 'on', PREKEY_FETCH_LIMIT: '3' }),
    ]);
    client = new DirectoryServiceClient(service.grpc, callerCredentials('gateway'));
    redis = testRedis();
  });

  afterAll(async () => {
    client?.close();
    redis?.disconnect();
    await Promise.all([service?.stop(), limited?.stop()]);
  });

  const register = (name: string, keys = generateDeviceKeys(5)) =>
    unary(client.register.bind(client), {
      username: name,
      identityKey: Buffer.from(keys.identity.publicKey.serialize()),
      device: publicDeviceKeys(keys),
    });

  describe('Register', () => {
    it('creates an account whose device secret authenticates, and nothing else does', async () => {
      const name = username();
      const account = await register(name.toUpperCase());
      expect(account.deviceId).toBe(1);
      expect(Buffer.from(account.deviceSecret, 'base64url')).toHaveLength(32);

      const check = (secret: string, deviceId = 1) =>
        unary(client.authenticate.bind(client), {
          accountId: account.accountId,
          deviceId,
          deviceSecret: secret,
        });
      expect(await check(account.deviceSecret)).toEqual({ authenticated: true });
      expect(await check(`${account.deviceSecret}x`)).toEqual({ authenticated: false });
      expect(await check(account.deviceSecret, 2)).toEqual({ authenticated: false });

      expect(await unary(client.lookupUsername.bind(client), { username: name })).toEqual({
        accountId: account.accountId,
        username: name,
      });
      const devices = await unary(client.listDevices.bind(client), { accountId: account.accountId });
      expect(devices.devices).toEqual([{ deviceId: 1, registrationId: expect.any(Number) as number }]);
    });

    it('refuses a username that is taken in any letter case', async () => {
      const name = username();
      await register(name);
      expect(await refusal(register(name.toUpperCase()))).toEqual({
        code: status.ALREADY_EXISTS,
        details: `username: ${name} is taken`,
      });
    });

    it('refuses the whole request for one bad signature, naming the key, and stores nothing', async () => {
      const name = username();
      const keys = generateDeviceKeys(60);
      const device = publicDeviceKeys(keys);
      const tampered = device.oneTimeKyberPreKeys[57];
      tampered.signature = Buffer.from(
        tampered.signature.map((byte, index) => (index === 5 ? byte ^ 1 : byte)),
      );
      const request = {
        username: name,
        identityKey: Buffer.from(keys.identity.publicKey.serialize()),
        device,
      };
      expect(await refusal(unary(client.register.bind(client), request))).toEqual({
        code: status.INVALID_ARGUMENT,
        details: 'device.one_time_kyber_pre_keys[57].signature: does not verify against the identity key',
      });
      expect((await refusal(unary(client.lookupUsername.bind(client), { username: name }))).code).toBe(
        status.NOT_FOUND,
      );
      // The name is still free: a correct request takes it.
      await expect(register(name)).resolves.toMatchObject({ deviceId: 1 });
    });

    it.each([
      [
        'a signed prekey signed by another identity',
        'device.signed_pre_key.signature: does not verify against the identity key',
      ],
      ['a malformed identity key', 'identity_key: is not a serialized libsignal public key'],
      [
        'a malformed one-time key',
        'device.one_time_pre_keys[2].public_key: is not a serialized libsignal public key',
      ],
      ['a repeated key id', 'device.one_time_pre_keys[1].key_id: repeats key id 1'],
      ['a registration id of 0', 'device.registration_id: must be between 1 and 16383'],
      ['a short username', "username: must be 3 to 32 characters of a-z, 0-9, '_' and '.'"],
      ['no device', 'device: is required'],
    ])('refuses %s with INVALID_ARGUMENT', async (problem, details) => {
      const keys = generateDeviceKeys(3);
      const device = publicDeviceKeys(keys);
      let name = username();
      let identityKey = Buffer.from(keys.identity.publicKey.serialize());
      let withDevice: typeof device | undefined = device;
      switch (problem) {
        case 'a signed prekey signed by another identity':
          device.signedPreKey = publicDeviceKeys(generateDeviceKeys(0)).signedPreKey;
          break;
        case 'a malformed identity key':
          identityKey = Buffer.from([5, 1, 2, 3]);
          break;
        case 'a malformed one-time key':
          device.oneTimePreKeys[2].publicKey = Buffer.alloc(33, 7);
          break;
        case 'a repeated key id':
          device.oneTimePreKeys[1].keyId = device.oneTimePreKeys[0].keyId;
          break;
        case 'a registration id of 0':
          device.registrationId = 0;
          break;
        case 'a short username':
          name = 'ab';
          break;
        case 'no device':
          withDevice = undefined;
          break;
      }
      expect(
        await refusal(
          unary(client.register.bind(client), { username: name, identityKey, device: withDevice }),
        ),
      ).toEqual({
        code: status.INVALID_ARGUMENT,
        details,
      });
    });

    it('refuses more than 100 one-time keys with RESOURCE_EXHAUSTED', async () => {
      expect(await refusal(register(username(), generateDeviceKeys(101)))).toEqual({
        code: status.RESOURCE_EXHAUSTED,
        details: 'device.one_time_pre_keys: at most 100 keys per request',
      });
    });
  });

  describe('account recovery', () => {
    const credential = () => Buffer.from(randomUUID().replace(/-/g, ''), 'hex').subarray(0, 16);
    const recoveryCredential = () => Buffer.concat([credential(), credential()]);
    const authenticates = (accountId: string, deviceId: number, deviceSecret: string) =>
      unary(client.authenticate.bind(client), { accountId, deviceId, deviceSecret }).then(
        (answer) => answer.authenticated,
      );
    const recover = (name: string, presented: Buffer, keys = generateDeviceKeys(3)) =>
      unary(client.recoverAccount.bind(client), {
        username: name,
        recoveryCredential: presented,
        identityKey: Buffer.from(keys.identity.publicKey.serialize()),
        device: publicDeviceKeys(keys),
      });

    it('makes a new device the only one, under a fresh id and the new identity key; the old one is signed out', async () => {
      const name = username();
      const old = await register(name);
      const secret = recoveryCredential();
      await unary(client.setRecoveryCredential.bind(client), {
        accountId: old.accountId,
        recoveryCredential: secret,
        currentRecoveryCredential: Buffer.alloc(0),
      });

      const keys = generateDeviceKeys(3);
      const recovered = await recover(name.toUpperCase(), secret, keys);
      expect(recovered).toMatchObject({ accountId: old.accountId, deviceId: 2, signedOutDeviceIds: [1] });
      expect(await authenticates(old.accountId, 1, old.deviceSecret)).toBe(false);
      expect(await authenticates(old.accountId, 2, recovered.deviceSecret)).toBe(true);
      const { devices } = await unary(client.listDevices.bind(client), { accountId: old.accountId });
      expect(devices).toEqual([{ deviceId: 2, registrationId: keys.registrationId }]);
      const { bundles } = await unary(client.getPreKeyBundle.bind(client), {
        requesterAccountId: randomUUID(),
        targetAccountId: old.accountId,
        targetDeviceId: 0,
      });
      expect(Buffer.from(bundles[0].identityKey)).toEqual(Buffer.from(keys.identity.publicKey.serialize()));

      // Recovering again moves on to the next id; the credential stays until the user replaces it.
      expect(await recover(name, secret)).toMatchObject({ deviceId: 3, signedOutDeviceIds: [2] });
    });

    it('answers a wrong credential, an account without one and an unknown username alike, and changes nothing', async () => {
      const name = username();
      const account = await register(name);
      const denied = {
        code: status.PERMISSION_DENIED,
        details: 'recovery_credential: wrong username or recovery credential',
      };
      expect(await refusal(recover(name, recoveryCredential()))).toEqual(denied);
      await unary(client.setRecoveryCredential.bind(client), {
        accountId: account.accountId,
        recoveryCredential: recoveryCredential(),
        currentRecoveryCredential: Buffer.alloc(0),
      });
      expect(await refusal(recover(name, recoveryCredential()))).toEqual(denied);
      expect(await refusal(recover(username(), recoveryCredential()))).toEqual(denied);
      expect(await authenticates(account.accountId, 1, account.deviceSecret)).toBe(true);
    });

    it('refuses malformed credentials and bad keys before looking at the account', async () => {
      const name = username();
      const account = await register(name);
      const secret = recoveryCredential();
      await unary(client.setRecoveryCredential.bind(client), {
        accountId: account.accountId,
        recoveryCredential: secret,
        currentRecoveryCredential: Buffer.alloc(0),
      });
      expect(await refusal(recover(name, Buffer.alloc(5)))).toEqual({
        code: status.INVALID_ARGUMENT,
        details: 'recovery_credential: must be 32 bytes',
      });
      expect(
        await refusal(
          unary(client.setRecoveryCredential.bind(client), {
            accountId: account.accountId,
            recoveryCredential: Buffer.alloc(31),
            currentRecoveryCredential: secret,
          }),
        ),
      ).toEqual({ code: status.INVALID_ARGUMENT, details: 'recovery_credential: must be 32 bytes' });
      const keys = generateDeviceKeys(1);
      const forged = publicDeviceKeys(keys);
      forged.signedPreKey!.signature = Buffer.alloc(64, 1);
      expect(
        (
          await refusal(
            unary(client.recoverAccount.bind(client), {
              username: name,
              recoveryCredential: secret,
              identityKey: Buffer.from(keys.identity.publicKey.serialize()),
              device: forged,
            }),
          )
        ).code,
      ).toBe(status.INVALID_ARGUMENT);
      expect(await authenticates(account.accountId, 1, account.deviceSecret)).toBe(true);
      expect(
        await refusal(
          unary(client.setRecoveryCredential.bind(client), {
            accountId: randomUUID(),
            recoveryCredential: secret,
            currentRecoveryCredential: Buffer.alloc(0),
          }),
        ),
      ).toEqual({ code: status.NOT_FOUND, details: 'account_id: no such account' });
    });

    it('replaces a recovery credential only for whoever presents the current one', async () => {
      const name = username();
      const account = await register(name);
      const set = (next: Buffer, current: Buffer) =>
        unary(client.setRecoveryCredential.bind(client), {
          accountId: account.accountId,
          recoveryCredential: next,
          currentRecoveryCredential: current,
        });
      const first = recoveryCredential();
      // The first one needs nothing more than the device credential the gateway checked.
      await set(first, Buffer.alloc(0));

      // An attacker with the device secret alone, or with a guess, cannot plant their own.
      const attackers = recoveryCredential();
      expect(await refusal(set(attackers, Buffer.alloc(0)))).toEqual({
        code: status.PERMISSION_DENIED,
        details:
          'current_recovery_credential: the account has a recovery credential; replacing it needs the current one',
      });
      expect(await refusal(set(attackers, recoveryCredential()))).toEqual({
        code: status.PERMISSION_DENIED,
        details: 'current_recovery_credential: does not match the recovery credential set now',
      });
      expect(await refusal(set(attackers, Buffer.alloc(16)))).toEqual({
        code: status.INVALID_ARGUMENT,
        details: 'current_recovery_credential: must be 32 bytes',
      });
      expect(await refusal(recover(name, attackers))).toMatchObject({ code: status.PERMISSION_DENIED });

      // The owner presents the current credential: again (every backup does), or to move to a new one.
      await set(first, first);
      const second = recoveryCredential();
      await set(second, first);
      expect(await refusal(recover(name, first))).toMatchObject({ code: status.PERMISSION_DENIED });
      expect(await refusal(set(first, first))).toMatchObject({ code: status.PERMISSION_DENIED });
      expect(await recover(name, second)).toMatchObject({
        accountId: account.accountId,
        signedOutDeviceIds: [1],
      });
    });
  });

  describe('RotateDeviceSecret', () => {
    const newSecret = () => randomBytes(32).toString('base64url');
    const authenticates = (accountId: string, deviceSecret: string) =>
      unary(client.authenticate.bind(client), { accountId, deviceId: 1, deviceSecret }).then(
        (answer) => answer.authenticated,
      );
    const rotate = (accountId: string, current: string, next: string) =>
      unary(client.rotateDeviceSecret.bind(client), {
        accountId,
        deviceId: 1,
        currentDeviceSecret: current,
        newDeviceSecret: next,
      });

    it('replaces the secret for a device that presents its current one; the old one stops working', async () => {
      const account = await register(username());
      const next = newSecret();
      await rotate(account.accountId, account.deviceSecret, next);
      expect(await authenticates(account.accountId, account.deviceSecret)).toBe(false);
      expect(await authenticates(account.accountId, next)).toBe(true);
      expect(await refusal(rotate(account.accountId, account.deviceSecret, newSecret()))).toEqual({
        code: status.UNAUTHENTICATED,
        details: 'current_device_secret: unknown device or wrong secret',
      });
      expect(await authenticates(account.accountId, next)).toBe(true);
    });

    it('lets exactly one of two rotations racing with the same secret win', async () => {
      const account = await register(username());
      const candidates = [newSecret(), newSecret()];
      const outcomes = await Promise.allSettled(
        candidates.map((next) => rotate(account.accountId, account.deviceSecret, next)),
      );
      expect(outcomes.map((outcome) => outcome.status).sort()).toEqual(['fulfilled', 'rejected']);
      const winner = candidates[outcomes.findIndex((outcome) => outcome.status === 'fulfilled')];
      const loser = candidates.find((candidate) => candidate !== winner)!;
      expect(await authenticates(account.accountId, winner)).toBe(true);
      expect(await authenticates(account.accountId, loser)).toBe(false);
    });

    it('refuses a malformed or unchanged new secret, and an unknown device, changing nothing', async () => {
      const account = await register(username());
      for (const bad of ['short', `${'A'.repeat(43)}=`, `${'A'.repeat(42)}B`, `${'A'.repeat(42)}+`]) {
        expect(await refusal(rotate(account.accountId, account.deviceSecret, bad))).toEqual({
          code: status.INVALID_ARGUMENT,
          details: 'new_device_secret: must be 32 random bytes in unpadded base64url (43 characters)',
        });
      }
      expect(await refusal(rotate(account.accountId, account.deviceSecret, account.deviceSecret))).toEqual({
        code: status.INVALID_ARGUMENT,
        details: 'new_device_secret: must differ from the current secret',
      });
      expect(await refusal(rotate(randomUUID(), account.deviceSecret, newSecret()))).toMatchObject({
        code: status.UNAUTHENTICATED,
      });
      expect(
        await refusal(
          unary(client.rotateDeviceSecret.bind(client), {
            accountId: account.accountId,
            deviceId: 0,
            currentDeviceSecret: account.deviceSecret,
            newDeviceSecret: newSecret(),
          }),
        ),
      ).toMatchObject({ code: status.INVALID_ARGUMENT });
      expect(await authenticates(account.accountId, account.deviceSecret)).toBe(true);
    });
  });

  describe('GetPreKeyBundle', () => {
    it('hands out each one-time key exactly once under 200 concurrent fetches, then the last-resort Kyber key', async () => {
      const keys = generateDeviceKeys(100);
      const target = await register(username(), keys);
      const requesters = Array.from({ length: 4 }, () => randomUUID());
      const fetches = await Promise.all(
        Array.from({ length: 200 }, (_, index) =>
          unary(client.getPreKeyBundle.bind(client), {
            requesterAccountId: requesters[index % requesters.length],
            targetAccountId: target.accountId,
            targetDeviceId: 1,
          }),
        ),
      );
      const bundles = fetches.map((fetch) => {
        expect(fetch.bundles).toHaveLength(1);
        return fetch.bundles[0];
      });
      const ecIds = bundles.flatMap((bundle) => (bundle.oneTimePreKey ? [bundle.oneTimePreKey.keyId] : []));
      expect(ecIds).toHaveLength(100);
      expect(new Set(ecIds).size).toBe(100);
      const kyberOneTime = bundles
        .filter((bundle) => !bundle.kyberLastResort)
        .map((bundle) => bundle.kyberPreKey!.keyId);
      expect(kyberOneTime).toHaveLength(100);
      expect(new Set(kyberOneTime).size).toBe(100);
      expect(
        bundles
          .filter((bundle) => bundle.kyberLastResort)
          .every((bundle) => bundle.kyberPreKey!.keyId === LAST_RESORT_KYBER_ID),
      ).toBe(true);
      expect(
        await unary(client.getPreKeyCount.bind(client), { accountId: target.accountId, deviceId: 1 }),
      ).toEqual({
        ecCount: 0,
        kyberCount: 0,
      });

      // What the directory hands out is what the device published, signatures intact.
      const identity = PublicKey.deserialize(new Uint8Array(bundles[0].identityKey));
      expect(identity.equals(keys.identity.publicKey)).toBe(true);
      for (const bundle of bundles.slice(0, 10)) {
        const signed = bundle.signedPreKey!;
        expect(identity.verify(new Uint8Array(signed.publicKey), new Uint8Array(signed.signature))).toBe(
          true,
        );
        const kyber = bundle.kyberPreKey!;
        expect(identity.verify(new Uint8Array(kyber.publicKey), new Uint8Array(kyber.signature))).toBe(true);
      }
    });

    it('counts down by exactly the number of keys handed out', async () => {
      const target = await register(username(), generateDeviceKeys(20));
      await Promise.all(
        Array.from({ length: 7 }, () =>
          unary(client.getPreKeyBundle.bind(client), {
            requesterAccountId: randomUUID(),
            targetAccountId: target.accountId,
            targetDeviceId: 0,
          }),
        ),
      );
      expect(
        await unary(client.getPreKeyCount.bind(client), { accountId: target.accountId, deviceId: 1 }),
      ).toEqual({
        ecCount: 13,
        kyberCount: 13,
      });
    });

    it('throttles one requester per target with RESOURCE_EXHAUSTED and a retry delay, and no one else', async () => {
      const limitedClient = new DirectoryServiceClient(limited.grpc, callerCredentials('gateway'));
      try {
        const keys = generateDeviceKeys(10);
        const target = await unary(limitedClient.register.bind(limitedClient), {
          username: username(),
          identityKey: Buffer.from(keys.identity.publicKey.serialize()),
          device: publicDeviceKeys(keys),
        });
        const fetch = (requesterAccountId: string) =>
          unary(limitedClient.getPreKeyBundle.bind(limitedClient), {
            requesterAccountId,
            targetAccountId: target.accountId,
            targetDeviceId: 1,
          });
        const greedy = randomUUID();
        for (let i = 0; i < 3; i++) await fetch(greedy);
        const thrown = await fetch(greedy).catch((error: unknown) => error);
        expect(thrown).toMatchObject({
          code: status.RESOURCE_EXHAUSTED,
          details: expect.stringMatching(
            /^too many prekey fetches for this account; retry in \d+ s$/,
          ) as string,
        });
        expect(Number((thrown as ServiceError).metadata.get('retry-after-ms')[0])).toBeGreaterThan(0);
        await expect(fetch(randomUUID())).resolves.toBeDefined();
        // The throttled fetch claimed nothing: 4 fetches succeeded in all.
        expect(
          await unary(limitedClient.getPreKeyCount.bind(limitedClient), {
            accountId: target.accountId,
            deviceId: 1,
          }),
        ).toEqual({ ecCount: 6, kyberCount: 6 });
      } finally {
        limitedClient.close();
      }
    });

    it('answers NOT_FOUND for an account that does not exist', async () => {
      expect(
        await refusal(
          unary(client.getPreKeyBundle.bind(client), {
            requesterAccountId: randomUUID(),
            targetAccountId: randomUUID(),
            targetDeviceId: 0,
          }),
        ),
      ).toEqual({ code: status.NOT_FOUND, details: 'target_account_id: no such account' });
    });
  });

  describe('UploadPreKeys', () => {
    it('adds verified one-time keys, and a bad one changes nothing', async () => {
      const keys = generateDeviceKeys(0);
      const account = await register(username(), keys);
      const fresh = generateOneTimeKeys(keys.identity, 1000, 50);
      const upload = publicDeviceKeys({ ...keys, ...fresh });
      const request = {
        accountId: account.accountId,
        deviceId: 1,
        oneTimePreKeys: upload.oneTimePreKeys,
        oneTimeKyberPreKeys: upload.oneTimeKyberPreKeys,
      };
      expect(await unary(client.uploadPreKeys.bind(client), request)).toEqual({
        ecCount: 50,
        kyberCount: 50,
      });

      const stranger = publicDeviceKeys({
        ...keys,
        ...generateOneTimeKeys(generateDeviceKeys(0).identity, 2000, 2),
      });
      expect(
        await refusal(
          unary(client.uploadPreKeys.bind(client), {
            ...request,
            oneTimePreKeys: [],
            oneTimeKyberPreKeys: stranger.oneTimeKyberPreKeys,
          }),
        ),
      ).toEqual({
        code: status.INVALID_ARGUMENT,
        details: 'one_time_kyber_pre_keys[0].signature: does not verify against the identity key',
      });
      expect(
        await unary(client.getPreKeyCount.bind(client), { accountId: account.accountId, deviceId: 1 }),
      ).toEqual({
        ecCount: 50,
        kyberCount: 50,
      });
    });

    it('refuses malformed account ids', async () => {
      expect(
        await refusal(unary(client.getPreKeyCount.bind(client), { accountId: "x' OR 1=1 --", deviceId: 1 })),
      ).toEqual({ code: status.INVALID_ARGUMENT, details: 'account_id: is not an account id' });
      expect(
        await refusal(unary(client.getPreKeyCount.bind(client), { accountId: '', deviceId: 1 })),
      ).toEqual({ code: status.INVALID_ARGUMENT, details: 'account_id: is required' });
    });
  });

  describe('ListDevicesBatch', () => {
    let relay: DirectoryServiceClient;
    beforeAll(() => {
      relay = new DirectoryServiceClient(service.grpc, callerCredentials('message-relay'));
    });
    afterAll(() => relay?.close());

    const batch = (accountIds: string[]) => unary(relay.listDevicesBatch.bind(relay), { accountIds });

    it("answers each account's devices in the order asked, repeats included, and the unknown as not found", async () => {
      const [alice, bob] = await Promise.all([register(username()), register(username())]);
      const { devices: aliceDevices } = await unary(client.listDevices.bind(client), {
        accountId: alice.accountId,
      });
      const nobody = randomUUID();
      const { accounts } = await batch([bob.accountId, nobody, alice.accountId, bob.accountId]);
      expect(accounts.map((account) => [account.accountId, account.found, account.devices.length])).toEqual([
        [bob.accountId, true, 1],
        [nobody, false, 0],
        [alice.accountId, true, 1],
        [bob.accountId, true, 1],
      ]);
      expect(accounts[2].devices).toEqual(aliceDevices);
      expect(await batch([])).toEqual({ accounts: [] });
    });

    it('refuses the whole call for one malformed id or more than 1,000 accounts, naming which', async () => {
      const alice = await register(username());
      expect(await refusal(batch([alice.accountId, "x' OR 1=1 --"]))).toEqual({
        code: status.INVALID_ARGUMENT,
        details: 'account_ids[1]: is not an account id',
      });
      expect(await refusal(batch(Array.from({ length: 1001 }, () => alice.accountId)))).toEqual({
        code: status.INVALID_ARGUMENT,
        details: 'account_ids: 1001 accounts is over the limit of 1000 a call',
      });
      expect((await batch(Array.from({ length: 1000 }, () => alice.accountId))).accounts).toHaveLength(1000);
    });

    it("is the relay's alone: the gateway may not list many accounts' devices at once", async () => {
      expect((await refusal(unary(client.listDevicesBatch.bind(client), { accountIds: [] }))).code).toBe(
        status.PERMISSION_DENIED,
      );
    });
  });

  describe('LookupAccount', () => {
    it('names the account by the username it holds now, the reverse of LookupUsername', async () => {
      const name = username();
      const account = await register(name.toUpperCase());
      expect(await unary(client.lookupAccount.bind(client), { accountId: account.accountId })).toEqual({
        accountId: account.accountId,
        username: name,
      });
    });

    it('answers NOT_FOUND for an account that does not exist and INVALID_ARGUMENT for a malformed id', async () => {
      expect(await refusal(unary(client.lookupAccount.bind(client), { accountId: randomUUID() }))).toEqual({
        code: status.NOT_FOUND,
        details: 'account_id: no such account',
      });
      expect(await refusal(unary(client.lookupAccount.bind(client), { accountId: 'alice' }))).toEqual({
        code: status.INVALID_ARGUMENT,
        details: 'account_id: is not an account id',
      });
    });
  });

  describe('GetIdentityKey', () => {
    it("answers the identity key the account registered, and NOT_FOUND or INVALID_ARGUMENT for anyone else's", async () => {
      const keys = generateDeviceKeys(1);
      const account = await register(username(), keys);
      const { identityKey } = await unary(client.getIdentityKey.bind(client), {
        accountId: account.accountId,
      });
      expect(Buffer.from(identityKey)).toEqual(Buffer.from(keys.identity.publicKey.serialize()));
      expect(await refusal(unary(client.getIdentityKey.bind(client), { accountId: randomUUID() }))).toEqual({
        code: status.NOT_FOUND,
        details: 'account_id: no such account',
      });
      expect(await refusal(unary(client.getIdentityKey.bind(client), { accountId: 'alice' }))).toEqual({
        code: status.INVALID_ARGUMENT,
        details: 'account_id: is not an account id',
      });
    });
  });

  describe('SetUnidentifiedAccess and GetUnidentifiedAccess', () => {
    const access = (accountId: string) => unary(client.getUnidentifiedAccess.bind(client), { accountId });
    const set = (accountId: string, key: Uint8Array, unrestricted = false) =>
      unary(client.setUnidentifiedAccess.bind(client), {
        accountId,
        unidentifiedAccessKey: Buffer.from(key),
        unrestrictedUnidentifiedAccess: unrestricted,
      });

    it('keeps the key as given and the anyone flag, and an empty key clears the key', async () => {
      const account = await register(username(), generateDeviceKeys(1));
      expect(await access(account.accountId)).toEqual({
        unidentifiedAccessKey: Buffer.alloc(0),
        unrestrictedUnidentifiedAccess: false,
      });
      const key = randomBytes(16);
      await set(account.accountId, key);
      expect(await access(account.accountId)).toEqual({
        unidentifiedAccessKey: key,
        unrestrictedUnidentifiedAccess: false,
      });
      await set(account.accountId, new Uint8Array(), true);
      expect(await access(account.accountId)).toEqual({
        unidentifiedAccessKey: Buffer.alloc(0),
        unrestrictedUnidentifiedAccess: true,
      });
    });

    it('refuses a key of the wrong length, or an unknown account, and changes nothing', async () => {
      const account = await register(username(), generateDeviceKeys(1));
      const key = randomBytes(16);
      await set(account.accountId, key);
      for (const length of [1, 15, 17, 32]) {
        expect(await refusal(set(account.accountId, randomBytes(length), true))).toEqual({
          code: status.INVALID_ARGUMENT,
          details: 'unidentified_access_key: must be 16 bytes, or empty to clear it',
        });
      }
      expect(await access(account.accountId)).toEqual({
        unidentifiedAccessKey: key,
        unrestrictedUnidentifiedAccess: false,
      });
      expect(await refusal(set(randomUUID(), key))).toEqual({
        code: status.NOT_FOUND,
        details: 'account_id: no such account',
      });
      expect(await refusal(access(randomUUID()))).toEqual({
        code: status.NOT_FOUND,
        details: 'account_id: no such account',
      });
      expect(await refusal(access('alice'))).toEqual({
        code: status.INVALID_ARGUMENT,
        details: 'account_id: is not an account id',
      });
    });

    it('tells the gateways of every change it stored, once it is readable, and of nothing it refused', async () => {
      const heard: { accountId: string; access: unknown }[] = [];
      const waiters = new Map<string, () => void>();
      const subscription = await subscribe(redis, unidentifiedAccessChanges.CHANNEL, {
        name: 'sotto-directory-spec-access-changes',
        onMessage: (payload) => {
          const { accountId } = unidentifiedAccessChanges.decode(payload);
          const waiter = waiters.get(accountId);
          if (waiter === undefined) return;
          // What a gateway that dropped its copy reads next: the change, already committed.
          void access(accountId).then((now) => {
            heard.push({ accountId, access: now });
            waiter();
          });
        },
      });
      /** Runs `change` and waits for the next notice naming `accountId`. */
      const notice = async (accountId: string, change: () => Promise<unknown>): Promise<void> => {
        const arrived = new Promise<void>((resolve) => waiters.set(accountId, resolve));
        await change();
        await arrived;
      };
      try {
        const [bob, carol] = await Promise.all([
          register(username(), generateDeviceKeys(1)),
          register(username(), generateDeviceKeys(1)),
        ]);
        const [first, second] = [randomBytes(16), randomBytes(16)];
        await notice(bob.accountId, () => set(bob.accountId, first));
        await notice(bob.accountId, () => set(bob.accountId, first, true));
        // Refused changes: a key of the wrong length, and an account that does not exist.
        await refusal(set(bob.accountId, randomBytes(15), true));
        const nobody = randomUUID();
        waiters.set(nobody, () => undefined);
        await refusal(set(nobody, second));
        // Then an unrestricted account restricted again, and another's key cleared. Notices from one
        // directory arrive in the order it published them: a refused change that had published would be heard by now.
        await notice(bob.accountId, () => set(bob.accountId, second));
        await notice(carol.accountId, () => set(carol.accountId, new Uint8Array()));
        expect(heard).toEqual([
          {
            accountId: bob.accountId,
            access: { unidentifiedAccessKey: first, unrestrictedUnidentifiedAccess: false },
          },
          {
            accountId: bob.accountId,
            access: { unidentifiedAccessKey: first, unrestrictedUnidentifiedAccess: true },
          },
          {
            accountId: bob.accountId,
            access: { unidentifiedAccessKey: second, unrestrictedUnidentifiedAccess: false },
          },
          {
            accountId: carol.accountId,
            access: { unidentifiedAccessKey: Buffer.alloc(0), unrestrictedUnidentifiedAccess: false },
          },
        ]);
      } finally {
        await subscription.close();
      }
    });

    describe('GetUnidentifiedAccessBatch', () => {
      const batch = (accountIds: string[]) =>
        unary(client.getUnidentifiedAccessBatch.bind(client), { accountIds });

      it('answers each account as GetUnidentifiedAccess does, in the order asked, repeats included, the unknown as not found', async () => {
        const [keyed, open, bare] = await Promise.all([
          register(username(), generateDeviceKeys(1)),
          register(username(), generateDeviceKeys(1)),
          register(username(), generateDeviceKeys(1)),
        ]);
        const key = randomBytes(16);
        await set(keyed.accountId, key);
        await set(open.accountId, randomBytes(16), true);
        const nobody = randomUUID();
        const asked = [open.accountId, nobody, keyed.accountId, bare.accountId, keyed.accountId];
        const { accounts } = await batch(asked);
        expect(accounts.map((account) => [account.accountId, account.found])).toEqual(
          asked.map((accountId) => [accountId, accountId !== nobody]),
        );
        for (const [index, accountId] of asked.entries()) {
          if (accountId === nobody) continue;
          const { accountId: _, found: __, ...each } = accounts[index];
          expect(each).toEqual(await access(accountId));
        }
        expect(accounts[1]).toEqual({
          accountId: nobody,
          found: false,
          unidentifiedAccessKey: Buffer.alloc(0),
          unrestrictedUnidentifiedAccess: false,
        });
        expect(accounts[2].unidentifiedAccessKey).toEqual(key);
        expect(await batch([])).toEqual({ accounts: [] });
      });

      it('refuses the whole call for one malformed id or more than 1,000 accounts, naming which', async () => {
        const alice = await register(username(), generateDeviceKeys(1));
        expect(await refusal(batch([alice.accountId, "x' OR 1=1 --"]))).toEqual({
          code: status.INVALID_ARGUMENT,
          details: 'account_ids[1]: is not an account id',
        });
        expect(await refusal(batch(Array.from({ length: 1001 }, () => alice.accountId)))).toEqual({
          code: status.INVALID_ARGUMENT,
          details: 'account_ids: 1001 accounts is over the limit of 1000 a call',
        });
      });

      it("is the gateway's alone: the relay may not read access keys", async () => {
        const relay = new DirectoryServiceClient(service.grpc, callerCredentials('message-relay'));
        try {
          expect(
            (await refusal(unary(relay.getUnidentifiedAccessBatch.bind(relay), { accountIds: [] }))).code,
          ).toBe(status.PERMISSION_DENIED);
        } finally {
          relay.close();
        }
      });
    });
  });
});
