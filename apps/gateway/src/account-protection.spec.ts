import { randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { Metadata, status, type ClientDuplexStream } from '@grpc/grpc-js';
import type { Redis } from 'ioredis';
import { authorizationMetadata, generateDeviceKeys, publicDeviceKeys, unary } from '@sotto/client-sdk';
import {
  AccountServiceClient,
  MessagingServiceClient,
  type ConnectRequest,
  type ConnectResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import {
  gatewayCredentials,
  outcome,
  startGatewayFor,
  startTcpProxy,
  startTestPlatform,
  testInfra,
  testRedis,
  type Platform,
  type TcpProxy,
  type TestService,
} from '@sotto/testing';

interface Device {
  username: string;
  accountId: string;
  deviceId: number;
  secret: string;
}

const authOf = (device: Pick<Device, 'accountId' | 'deviceId' | 'secret'>): Metadata =>
  authorizationMetadata({ ...device, deviceSecret: device.secret });

const newSecret = (): string => randomBytes(32).toString('base64url');

/**
 * Calls `attempt` back to back until it is refused, and says how long that
 * took; fails if it is still accepted after `withinMs`. No sleeping: each
 * call starts as the previous one returns.
 */
async function refusedWithin(
  withinMs: number,
  attempt: () => Promise<unknown>,
): Promise<{ code: status; afterMs: number }> {
  const start = performance.now();
  for (;;) {
    const refused = await outcome(attempt());
    const afterMs = performance.now() - start;
    if (refused) return { code: refused.code, afterMs };
    if (afterMs > withinMs) throw new Error(`still accepted ${afterMs.toFixed(0)} ms after the revocation`);
  }
}

/** Resolves when a Connect stream ends, whatever it received before. */
function ended(call: ClientDuplexStream<ConnectRequest, ConnectResponse>): Promise<void> {
  return new Promise((resolve) => {
    call.on('data', () => undefined);
    call.on('error', () => resolve());
    call.on('end', () => resolve());
  });
}

/** Resolves with the stream's first message. */
function firstMessage(call: ClientDuplexStream<ConnectRequest, ConnectResponse>): Promise<ConnectResponse> {
  return new Promise((resolve, reject) => {
    call.once('data', resolve);
    call.once('error', reject);
  });
}

describe('account protection, through the public API of several gateways', () => {
  let platform: Platform;
  // A second gateway of the same platform, reaching Redis through a proxy the tests can cut.
  let second: TestService;
  let secondRedis: TcpProxy;
  const secondId = `second-${randomUUID().slice(0, 8)}`;
  let redis: Redis;
  // A third, with low limits on failed authentications and a cache that keeps nothing past 1 ms.
  let limited: TestService;
  const clients: { close(): void }[] = [];

  const accountsAt = (address: string): AccountServiceClient => {
    const client = new AccountServiceClient(address, gatewayCredentials());
    clients.push(client);
    return client;
  };
  const messagingAt = (address: string): MessagingServiceClient => {
    const client = new MessagingServiceClient(address, gatewayCredentials());
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    platform = await startTestPlatform();
    redis = testRedis();
    const redisUrl = new URL(testInfra().redisUrl);
    secondRedis = await startTcpProxy(`${redisUrl.hostname}:${redisUrl.port}`);
    const proxiedRedis = new URL(testInfra().redisUrl);
    proxiedRedis.port = secondRedis.address.split(':')[1] ?? '';
    [second, limited] = await Promise.all([
      startGatewayFor(platform, { REDIS_URL: proxiedRedis.toString(), GATEWAY_ID: secondId }),
      startGatewayFor(platform, {
        SOTTO_RATE_LIMITS: 'on',
        AUTH_FAILURES_PER_SOURCE: '6',
        AUTH_FAILURES_PER_DEVICE: '8',
        AUTH_FAILURE_WINDOW_SECONDS: '60',
        AUTH_CACHE_TTL_MS: '1',
      }),
    ]);
  });

  afterAll(async () => {
    for (const client of clients) client.close();
    await Promise.all([second?.stop(), limited?.stop()]);
    await secondRedis?.close();
    await redis?.quit();
    await platform?.stop();
  });

  async function register(): Promise<Device> {
    const accounts = accountsAt(platform.gateway);
    const username = `u_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
    const keys = generateDeviceKeys(5);
    const registered = await unary(accounts.register.bind(accounts), {
      username,
      identityKey: Buffer.from(keys.identity.publicKey.serialize()),
      device: publicDeviceKeys(keys),
    });
    return {
      username,
      accountId: registered.accountId,
      deviceId: registered.deviceId,
      secret: registered.deviceSecret,
    };
  }

  /** Any authenticated call will do: LookupUsername of the device's own name. */
  const lookup = (address: string, device: Device, secret = device.secret) => {
    const accounts = accountsAt(address);
    return unary(
      accounts.lookupUsername.bind(accounts),
      { username: device.username },
      { metadata: authOf({ ...device, secret }) },
    );
  };

  const rotate = (address: string, device: Device, next: string) => {
    const accounts = accountsAt(address);
    return unary(
      accounts.rotateDeviceSecret.bind(accounts),
      { newDeviceSecret: next },
      { metadata: authOf(device) },
    );
  };

  describe('the recovery credential', () => {
    const setCredential = (device: Device, next: Buffer, current: Buffer) => {
      const accounts = accountsAt(platform.gateway);
      return unary(
        accounts.setRecoveryCredential.bind(accounts),
        { recoveryCredential: next, currentRecoveryCredential: current },
        { metadata: authOf(device) },
      );
    };
    const recover = (device: Device, credential: Buffer) => {
      const accounts = accountsAt(platform.gateway);
      const keys = generateDeviceKeys(2);
      return unary(accounts.recoverAccount.bind(accounts), {
        username: device.username,
        recoveryCredential: credential,
        identityKey: Buffer.from(keys.identity.publicKey.serialize()),
        device: publicDeviceKeys(keys),
      });
    };

    it("can't be replaced with a stolen device secret alone, so the thief can't recover the account away", async () => {
      const owner = await register();
      const ownersCredential = randomBytes(32);
      await setCredential(owner, ownersCredential, Buffer.alloc(0));

      // The thief holds the device's credential, exactly as the owner's device sends it.
      const thiefs = randomBytes(32);
      expect(await outcome(setCredential(owner, thiefs, Buffer.alloc(0)))).toMatchObject({
        code: status.PERMISSION_DENIED,
        details:
          'current_recovery_credential: the account has a recovery credential; replacing it needs the current one',
      });
      expect(await outcome(setCredential(owner, thiefs, randomBytes(32)))).toMatchObject({
        code: status.PERMISSION_DENIED,
      });
      expect(await outcome(recover(owner, thiefs))).toMatchObject({
        code: status.PERMISSION_DENIED,
        details: 'recovery_credential: wrong username or recovery credential',
      });
      // Nothing changed: the owner's device still works, and the owner's credential still recovers.
      expect(await lookup(platform.gateway, owner)).toMatchObject({ accountId: owner.accountId });
      await setCredential(owner, ownersCredential, ownersCredential);
      expect(await recover(owner, ownersCredential)).toMatchObject({ accountId: owner.accountId });
    });
  });

  describe('revocation', () => {
    it('a rotated secret fails on another gateway within 1 s, its streams end, and the new one works everywhere', async () => {
      const device = await register();
      // The second gateway has authenticated the old secret and holds a stream opened with it.
      expect(await lookup(second.grpc, device)).toMatchObject({ accountId: device.accountId });
      const stream = messagingAt(second.grpc).connect(authOf(device));
      expect(await firstMessage(stream)).toEqual({ queueEmpty: {} });
      const streamEnded = ended(stream);

      const next = newSecret();
      await rotate(platform.gateway, device, next);
      const refused = await refusedWithin(1000, () => lookup(second.grpc, device));
      expect(refused.code).toBe(status.UNAUTHENTICATED);
      await streamEnded;

      for (const gateway of [platform.gateway, second.grpc]) {
        expect(await lookup(gateway, device, next)).toMatchObject({ accountId: device.accountId });
        expect(await outcome(lookup(gateway, device))).toMatchObject({
          code: status.UNAUTHENTICATED,
          details: 'authorization: unknown device or wrong secret',
        });
      }
      // The thief who copied the old secret cannot rotate it back either.
      expect(await outcome(rotate(platform.gateway, device, newSecret()))).toMatchObject({
        code: status.UNAUTHENTICATED,
      });
    });

    it('a device signed out by account recovery fails on another gateway within 1 s', async () => {
      const device = await register();
      const accounts = accountsAt(platform.gateway);
      const credential = randomBytes(32);
      await unary(
        accounts.setRecoveryCredential.bind(accounts),
        { recoveryCredential: credential, currentRecoveryCredential: Buffer.alloc(0) },
        { metadata: authOf(device) },
      );
      expect(await lookup(second.grpc, device)).toMatchObject({ accountId: device.accountId });

      const keys = generateDeviceKeys(2);
      await unary(accounts.recoverAccount.bind(accounts), {
        username: device.username,
        recoveryCredential: credential,
        identityKey: Buffer.from(keys.identity.publicKey.serialize()),
        device: publicDeviceKeys(keys),
      });
      expect((await refusedWithin(1000, () => lookup(second.grpc, device))).code).toBe(
        status.UNAUTHENTICATED,
      );
    });

    it('a gateway that lost its Redis connection trusts nothing it cached before, since it may have missed revocations', async () => {
      const device = await register();
      expect(await lookup(second.grpc, device)).toMatchObject({ accountId: device.accountId });

      // The second gateway is cut off from Redis while the secret is rotated: it misses the message.
      secondRedis.pause();
      secondRedis.cut();
      const next = newSecret();
      await rotate(platform.gateway, device, next);
      secondRedis.resume();

      // Its first answer for the old secret after that is already a refusal (once Redis answers again).
      expect(await outcome(lookup(second.grpc, device))).toMatchObject({ code: status.UNAUTHENTICATED });
      expect(await lookup(second.grpc, device, next)).toMatchObject({ accountId: device.accountId });

      // Subscribed again (Redis lists its revocation connection as subscribed), it hears the next
      // revocation as before, for what it cached since.
      const subscribed = new RegExp(`name=sotto-revocations-${secondId} .*sub=1`);
      for (const deadline = Date.now() + 10_000; !subscribed.test(String(await redis.client('LIST')));) {
        if (Date.now() > deadline) throw new Error('the second gateway did not subscribe again');
        await delay(10);
      }
      expect(await lookup(second.grpc, device, next)).toMatchObject({ accountId: device.accountId });
      await rotate(platform.gateway, { ...device, secret: next }, newSecret());
      expect((await refusedWithin(1000, () => lookup(second.grpc, device, next))).code).toBe(
        status.UNAUTHENTICATED,
      );
    });

    it('refuses a malformed new secret and changes nothing', async () => {
      const device = await register();
      expect(await outcome(rotate(platform.gateway, device, 'too-short'))).toMatchObject({
        code: status.INVALID_ARGUMENT,
        details: 'new_device_secret: must be 32 random bytes in unpadded base64url (43 characters)',
      });
      expect(await lookup(platform.gateway, device)).toMatchObject({ accountId: device.accountId });
    });
  });

  describe('failed authentications', () => {
    // Clients reach the limited gateway through proxies that connect from other loopback addresses.
    const from = async (address: string): Promise<string> => {
      const proxy = await startTcpProxy(limited.grpc, { from: address });
      clients.push({ close: () => void proxy.close() });
      return proxy.address;
    };
    const wrong = (device: Device): Device => ({ ...device, secret: newSecret() });

    it('cuts a flood of wrong secrets off at the source, while the right secret from elsewhere still works', async () => {
      const victim = await register();
      const attacker = await from('127.0.0.2');
      const flood = await Promise.all(
        Array.from({ length: 30 }, () => outcome(lookup(attacker, wrong(victim)))),
      );
      expect(flood.filter((error) => error?.code === status.UNAUTHENTICATED)).toHaveLength(6);
      const cutOff = flood.filter((error) => error?.code === status.RESOURCE_EXHAUSTED);
      expect(cutOff).toHaveLength(24);
      expect(cutOff[0]?.details).toMatch(
        /^authorization: too many failed authentications from this address; retry in \d+ s$/,
      );
      const retryAfterMs = Number(cutOff[0]?.metadata.get('retry-after-ms')[0]);
      expect(retryAfterMs).toBeGreaterThan(0);
      expect(retryAfterMs).toBeLessThanOrEqual(60_000);

      // From the flooding address even the right secret waits; from another one it works.
      expect(await outcome(lookup(attacker, victim))).toMatchObject({ code: status.RESOURCE_EXHAUSTED });
      expect(await lookup(await from('127.0.0.3'), victim)).toMatchObject({ accountId: victim.accountId });
    });

    it('past a device’s limit each address gets one more try of it, so a spray cannot lock the owner out', async () => {
      const victim = await register();
      const [first, other, owner] = await Promise.all([
        from('127.0.0.4'),
        from('127.0.0.5'),
        from('127.0.0.6'),
      ]);
      const codes = async (address: string, tries: number) => {
        const seen: (status | undefined)[] = [];
        for (let i = 0; i < tries; i++) seen.push((await outcome(lookup(address, wrong(victim))))?.code);
        return seen;
      };
      expect(await codes(first, 6)).toEqual(Array(6).fill(status.UNAUTHENTICATED));
      // The device's 7th and 8th failures, then one more try for this address past the limit.
      expect(await codes(other, 4)).toEqual([
        status.UNAUTHENTICATED,
        status.UNAUTHENTICATED,
        status.UNAUTHENTICATED,
        status.RESOURCE_EXHAUSTED,
      ]);
      expect(await outcome(lookup(other, wrong(victim)))).toMatchObject({
        details: expect.stringMatching(
          /^authorization: too many failed authentications for this device; retry in \d+ s$/,
        ) as string,
      });
      // The owner, from an address that has not failed, gets in, again and again.
      for (let i = 0; i < 5; i++) {
        expect(await lookup(owner, victim)).toMatchObject({ accountId: victim.accountId });
      }
    });

    it('does not count successes', async () => {
      const device = await register();
      const address = await from('127.0.0.7');
      for (let i = 0; i < 10; i++) {
        expect(await lookup(address, device)).toMatchObject({ accountId: device.accountId });
      }
      const failures: (status | undefined)[] = [];
      for (let i = 0; i < 7; i++) failures.push((await outcome(lookup(address, wrong(device))))?.code);
      expect(failures).toEqual([...Array<status>(6).fill(status.UNAUTHENTICATED), status.RESOURCE_EXHAUSTED]);
    });
  });
});
