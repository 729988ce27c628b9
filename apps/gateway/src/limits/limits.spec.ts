import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import {
  authorizationMetadata,
  generateDeviceKeys,
  publicDeviceKeys,
  SottoClient,
  unary,
} from '@sotto/client-sdk';
import { EnvelopeType } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import type { PreKeyBundle } from '@sotto/contracts/generated/sotto/common/v1/keys';
import {
  AccountServiceClient,
  KeysServiceClient,
  MessagingServiceClient,
  type ConnectResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import {
  gatewayCredentials,
  metricsText,
  metricValue,
  outcome,
  startTcpProxy,
  startTestPlatform,
  startTestService,
  type Platform,
  type TestService,
} from '@sotto/testing';

// The limits, played through the public API: a script bursting past each one is refused with
// RESOURCE_EXHAUSTED and a sane retry-after-ms; a person's ordinary hour never meets them at their
// defaults; a crowd cannot drain one device's one-time prekeys; SOTTO_RATE_LIMITS=off lifts them all.

interface Device {
  username: string;
  accountId: string;
  deviceId: number;
  registrationId: number;
  auth: Metadata;
}

/** Small buckets, so a script meets them in a few calls (periods of an hour: nothing refills meanwhile). */
const SCRIPTED = {
  SOTTO_RATE_LIMITS: 'on',
  RATE_LIMIT_REGISTER_PER_SOURCE: '3/1h',
  RATE_LIMIT_RECOVER_ACCOUNT_PER_SOURCE: '2/1h',
  RATE_LIMIT_SEND_PER_DEVICE: '5/1h',
  RATE_LIMIT_SEND_PER_DESTINATION: '8/1h',
  RATE_LIMIT_LOOKUP_USERNAME_PER_ACCOUNT: '4/1h',
  RATE_LIMIT_LOOKUP_ACCOUNT_PER_ACCOUNT: '4/1h',
  RATE_LIMIT_PREKEY_BUNDLES_PER_ACCOUNT: '4/1h',
  // One connection back every 10 s: short enough for a test to wait out the retry-after.
  RATE_LIMIT_CONNECT_PER_DEVICE: '3/30s',
  RATE_LIMIT_OTHER_CALLS_PER_DEVICE: '6/1h',
};
const HOUR = 3_600_000;

/** A loopback address no other test uses, so per-address buckets in the shared Redis start full. */
const freshAddress = (): string => `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
const newName = (): string => `u_${randomUUID().replace(/-/g, '').slice(0, 12)}`;

/**
 * A refusal as every limit answers: RESOURCE_EXHAUSTED, "<what>; retry in N s", and the wait in
 * `retry-after-ms`: more than nothing, at most the time one token takes to come back, and N its
 * seconds rounded up. Returns the wait.
 */
function expectThrottled(error: ServiceError | undefined, what: string, tokenEveryMs: number): number {
  expect(error?.code).toBe(status.RESOURCE_EXHAUSTED);
  const match = /^(.*); retry in (\d+) s$/.exec(error?.details ?? '');
  expect(match?.[1]).toBe(what);
  const retryAfterMs = Number(error?.metadata.get('retry-after-ms')[0]);
  expect(Number.isInteger(retryAfterMs)).toBe(true);
  expect(retryAfterMs).toBeGreaterThan(0);
  expect(retryAfterMs).toBeLessThanOrEqual(tokenEveryMs);
  expect(Number(match?.[2])).toBe(Math.ceil(retryAfterMs / 1000));
  return retryAfterMs;
}

/** Refusals the service has counted for a limit, from its /metrics. */
function hits(service: Pick<TestService, 'metrics'>, limit: string): Promise<number> {
  return metricValue(service, `sotto_rate_limit_hits_total{limit="${limit}"}`, { absentAs: 0 });
}

describe('rate limits, through the public API', () => {
  // Every service's limits explicitly off: where the platform's own accounts are made, and what
  // the SOTTO_RATE_LIMITS=off test measures.
  let platform: Platform & { databaseUrl: string };
  // A directory of the same deployment with its limits on, at their defaults.
  let directory: TestService;
  // Gateways with limits on, in front of it: small buckets for scripts, and the defaults.
  let scripted: TestService;
  let defaults: TestService;
  const closers: { close(): unknown }[] = [];
  const profiles = mkdtempSync(join(tmpdir(), 'sotto-limits-'));

  beforeAll(async () => {
    const off = { SOTTO_RATE_LIMITS: 'off' };
    platform = await startTestPlatform({ gateway: off, 'prekey-directory': off, 'key-vault': off });
    directory = await startTestService('prekey-directory', {
      DATABASE_URL: platform.databaseUrl,
      SOTTO_RATE_LIMITS: 'on',
    });
    const upstream = {
      PREKEY_DIRECTORY_ADDR: directory.grpc,
      MESSAGE_RELAY_ADDR: platform.services['message-relay'].grpc,
      PRESENCE_ADDR: platform.services.presence.grpc,
      BACKUP_STORE_ADDR: platform.services['backup-store'].grpc,
      KEY_VAULT_ADDR: platform.services['key-vault'].grpc,
    };
    [scripted, defaults] = await Promise.all([
      startTestService('gateway', { ...upstream, ...SCRIPTED }),
      startTestService('gateway', { ...upstream, SOTTO_RATE_LIMITS: 'on' }),
    ]);
  });

  afterAll(async () => {
    for (const closer of closers) closer.close();
    await Promise.all([scripted?.stop(), defaults?.stop(), directory?.stop()]);
    await platform?.stop();
    rmSync(profiles, { recursive: true, force: true });
  });

  /** Where a client reaches `gateway` from an address of its own. */
  async function from(gateway: string, address = freshAddress()): Promise<string> {
    const proxy = await startTcpProxy(gateway, { from: address });
    closers.push({ close: () => void proxy.close() });
    return proxy.address;
  }
  const accountsAt = (address: string): AccountServiceClient => {
    const client = new AccountServiceClient(address, gatewayCredentials());
    closers.push(client);
    return client;
  };
  const keysAt = (address: string): KeysServiceClient => {
    const client = new KeysServiceClient(address, gatewayCredentials());
    closers.push(client);
    return client;
  };
  const messagingAt = (address: string): MessagingServiceClient => {
    const client = new MessagingServiceClient(address, gatewayCredentials());
    closers.push(client);
    return client;
  };

  const registerAt = async (address: string, username = newName(), oneTimeKeys = 2): Promise<Device> => {
    const accounts = accountsAt(address);
    const keys = generateDeviceKeys(oneTimeKeys);
    const registered = await unary(accounts.register.bind(accounts), {
      username,
      identityKey: Buffer.from(keys.identity.publicKey.serialize()),
      device: publicDeviceKeys(keys),
    });
    const auth = authorizationMetadata(registered);
    return { username, ...registered, registrationId: keys.registrationId, auth };
  };
  /** Accounts made where nothing is limited, for the tests to spend their limits with. */
  const register = (oneTimeKeys?: number): Promise<Device> =>
    registerAt(platform.gateway, newName(), oneTimeKeys);

  const send = (address: string, sender: Device, to: Device) => {
    const messaging = messagingAt(address);
    return unary(
      messaging.send.bind(messaging),
      {
        destinationAccountId: to.accountId,
        clientTimestampMs: String(Date.now()),
        ephemeral: false,
        envelopes: [
          {
            destinationDeviceId: 1,
            destinationRegistrationId: to.registrationId,
            type: EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT,
            content: randomBytes(64),
          },
        ],
      },
      { metadata: sender.auth },
    );
  };

  const lookupUsername = (address: string, caller: Device, username: string) => {
    const accounts = accountsAt(address);
    return unary(accounts.lookupUsername.bind(accounts), { username }, { metadata: caller.auth });
  };

  const bundleOf = (address: string, caller: Device, target: Pick<Device, 'accountId'>) => {
    const keys = keysAt(address);
    return unary(
      keys.getPreKeyBundle.bind(keys),
      { accountId: target.accountId, deviceId: 0 },
      { metadata: caller.auth },
    );
  };

  /** Opens a Connect stream; resolves once it is open (QueueEmpty) and closes it, or with the refusal. */
  const connectOnce = (address: string, device: Device): Promise<ServiceError | undefined> => {
    const call = messagingAt(address).connect(device.auth);
    return new Promise((resolve) => {
      // Let in, it gets QueueEmpty, or is displaced first by another connection of the same device.
      call.on('data', (message: ConnectResponse) => {
        if (!message.queueEmpty && !message.displaced) return;
        call.end();
        call.cancel();
        resolve(undefined);
      });
      call.on('end', () => resolve(undefined));
      call.on('error', (error: ServiceError) => resolve(error.code === status.CANCELLED ? undefined : error));
    });
  };

  describe('a script', () => {
    it('registering in bulk from one address is cut off there, and only there; the refused are not stored', async () => {
      const address = await from(scripted.grpc);
      const before = await hits(scripted, 'register_per_source');
      const names = Array.from({ length: 6 }, newName);
      const results = await Promise.all(names.map((name) => outcome(registerAt(address, name, 0))));
      expect(results.filter((result) => result === undefined)).toHaveLength(3);
      const refused = results.flatMap((result, index) =>
        result ? [[result, names[index] ?? ''] as const] : [],
      );
      expect(refused).toHaveLength(3);
      for (const [error] of refused)
        expectThrottled(error, 'too many registrations from this address', HOUR / 3);
      expect(await hits(scripted, 'register_per_source')).toBe(before + 3);
      // Nobody got the refused names.
      const checker = await register();
      for (const [, name] of refused) {
        expect((await outcome(lookupUsername(platform.gateway, checker, name)))?.code).toBe(status.NOT_FOUND);
      }
      // Another address registers as before.
      await expect(registerAt(await from(scripted.grpc), newName(), 0)).resolves.toHaveProperty('accountId');
    });

    it('trying recovery credentials from one address is cut off after a few tries', async () => {
      const address = await from(scripted.grpc);
      const victim = await register();
      const accounts = accountsAt(address);
      const keys = generateDeviceKeys(0);
      const attempt = () =>
        outcome(
          unary(accounts.recoverAccount.bind(accounts), {
            username: victim.username,
            recoveryCredential: randomBytes(32),
            identityKey: Buffer.from(keys.identity.publicKey.serialize()),
            device: publicDeviceKeys(keys),
          }),
        );
      const codes: (status | undefined)[] = [];
      for (let i = 0; i < 2; i++) codes.push((await attempt())?.code);
      expect(codes).toEqual([status.PERMISSION_DENIED, status.PERMISSION_DENIED]);
      const before = await hits(scripted, 'recover_account_per_source');
      expectThrottled(await attempt(), 'too many account recoveries from this address', HOUR / 2);
      expect(await hits(scripted, 'recover_account_per_source')).toBe(before + 1);
    });

    it('spamming from one device is cut off per device, and a flood of one account per destination', async () => {
      const [spammer, other, victim, bystander] = await Promise.all([
        register(),
        register(),
        register(),
        register(),
      ]);
      const before = await Promise.all([
        hits(scripted, 'send_per_device'),
        hits(scripted, 'send_per_destination'),
      ]);
      for (let i = 0; i < 5; i++) await send(scripted.grpc, spammer, victim);
      expectThrottled(
        await outcome(send(scripted.grpc, spammer, victim)),
        'too many messages sent from this device',
        HOUR / 5,
      );
      // A second sender finds the victim's allowance (8) nearly spent: 3 more, then refused for the destination.
      for (let i = 0; i < 3; i++) await send(scripted.grpc, other, victim);
      expectThrottled(
        await outcome(send(scripted.grpc, other, victim)),
        'too many messages sent to this account',
        HOUR / 8,
      );
      // That refusal cost the second sender nothing: its own allowance has 2 left, for someone else.
      for (let i = 0; i < 2; i++) await send(scripted.grpc, other, bystander);
      expectThrottled(
        await outcome(send(scripted.grpc, other, bystander)),
        'too many messages sent from this device',
        HOUR / 5,
      );
      expect(
        await Promise.all([hits(scripted, 'send_per_device'), hits(scripted, 'send_per_destination')]),
      ).toEqual([before[0] + 2, before[1] + 1]);
    });

    it('enumerating usernames is cut off per account, whether the names exist or not', async () => {
      const [prober, known, honest] = await Promise.all([register(), register(), register()]);
      const before = await hits(scripted, 'lookup_username_per_account');
      const probes = [known.username, newName(), newName(), newName()];
      const answers = await Promise.all(
        probes.map((name) => outcome(lookupUsername(scripted.grpc, prober, name))),
      );
      expect(answers.map((answer) => answer?.code)).toEqual([
        undefined,
        status.NOT_FOUND,
        status.NOT_FOUND,
        status.NOT_FOUND,
      ]);
      expectThrottled(
        await outcome(lookupUsername(scripted.grpc, prober, known.username)),
        'too many username lookups by this account',
        HOUR / 4,
      );
      expect(await hits(scripted, 'lookup_username_per_account')).toBe(before + 1);
      await expect(lookupUsername(scripted.grpc, honest, known.username)).resolves.toMatchObject({
        accountId: known.accountId,
      });
    });

    it('walking account ids is cut off per account', async () => {
      const [prober, known] = await Promise.all([register(), register()]);
      const before = await hits(scripted, 'lookup_account_per_account');
      const accounts = accountsAt(scripted.grpc);
      const lookup = (accountId: string) =>
        outcome(unary(accounts.lookupAccount.bind(accounts), { accountId }, { metadata: prober.auth }));
      const answers = await Promise.all(
        [known.accountId, randomUUID(), randomUUID(), randomUUID()].map(lookup),
      );
      expect(answers.map((answer) => answer?.code)).toEqual([
        undefined,
        status.NOT_FOUND,
        status.NOT_FOUND,
        status.NOT_FOUND,
      ]);
      expectThrottled(await lookup(known.accountId), 'too many account lookups by this account', HOUR / 4);
      expect(await hits(scripted, 'lookup_account_per_account')).toBe(before + 1);
    });

    it('fetching prekey bundles in bulk is cut off per account', async () => {
      const collector = await register();
      const before = await hits(scripted, 'prekey_bundles_per_account');
      const targets = await Promise.all(Array.from({ length: 5 }, () => register()));
      const results = await Promise.all(
        targets.map((target) => outcome(bundleOf(scripted.grpc, collector, target))),
      );
      expect(results.filter((result) => result === undefined)).toHaveLength(4);
      const refused = results.find((result) => result !== undefined);
      expectThrottled(refused, 'too many prekey bundles fetched by this account', HOUR / 4);
      expect(await hits(scripted, 'prekey_bundles_per_account')).toBe(before + 1);
    });

    it('reconnecting in a loop is cut off per device, and let in again once the retry-after has passed', async () => {
      const device = await register();
      const before = await hits(scripted, 'connect_per_device');
      const attempts = await Promise.all(Array.from({ length: 6 }, () => connectOnce(scripted.grpc, device)));
      expect(attempts.filter((attempt) => attempt === undefined)).toHaveLength(3);
      const refusals = attempts.filter((attempt) => attempt !== undefined);
      const waits = refusals.map((refusal) =>
        expectThrottled(refusal, 'too many connections from this device', 10_000),
      );
      // Waiting out the retry-after it was given is the behaviour under test; it is at most 10 s.
      await delay(Math.max(...waits));
      expect(await connectOnce(scripted.grpc, device)).toBeUndefined();
      expectThrottled(
        await connectOnce(scripted.grpc, device),
        'too many connections from this device',
        10_000,
      );
      expect(await hits(scripted, 'connect_per_device')).toBe(before + refusals.length + 1);
    });

    it("hammering any other call is cut off per device, and the device's other limits are its own", async () => {
      const device = await register();
      const before = await hits(scripted, 'other_calls_per_device');
      const keys = keysAt(scripted.grpc);
      const count = () => outcome(unary(keys.getPreKeyCount.bind(keys), {}, { metadata: device.auth }));
      for (let i = 0; i < 6; i++) expect(await count()).toBeUndefined();
      expectThrottled(await count(), 'too many calls from this device', HOUR / 6);
      expect(await hits(scripted, 'other_calls_per_device')).toBe(before + 1);
      expect(await outcome(send(scripted.grpc, device, await register()))).toBeUndefined();
    });
  });

  it("keeps a crowd from draining a device's one-time prekeys, and a session still starts past the budget", async () => {
    // The target's device uploads 100 one-time keys of each kind; the directory hands out 50 a day.
    const target = await SottoClient.register({
      profileDir: join(profiles, 'target'),
      server: platform.gateway,
      username: newName(),
    });
    closers.push(target);
    const crowd = await Promise.all(Array.from({ length: 60 }, () => register(0)));
    // Each requester signs in first, a few at a time: authentications in flight from one address
    // hold places under its failure limit (20) until they succeed. Then they fetch all at once.
    const keys = keysAt(scripted.grpc);
    for (let i = 0; i < crowd.length; i += 10) {
      await Promise.all(
        crowd
          .slice(i, i + 10)
          .map((requester) => unary(keys.getPreKeyCount.bind(keys), {}, { metadata: requester.auth })),
      );
    }
    const before = await hits(directory, 'one_time_prekeys_per_device');
    const fetched = await Promise.all(
      crowd.map((requester) => bundleOf(scripted.grpc, requester, target).then(({ bundles }) => bundles)),
    );
    const bundles: PreKeyBundle[] = fetched.map((list) => {
      expect(list).toHaveLength(1);
      return list[0];
    });
    const withOneTime = bundles.filter((bundle) => bundle.oneTimePreKey !== undefined);
    expect(withOneTime).toHaveLength(50);
    expect(new Set(withOneTime.map((bundle) => bundle.oneTimePreKey?.keyId)).size).toBe(50);
    expect(withOneTime.every((bundle) => !bundle.kyberLastResort)).toBe(true);
    const without = bundles.filter((bundle) => bundle.oneTimePreKey === undefined);
    expect(without).toHaveLength(10);
    expect(without.every((bundle) => bundle.kyberLastResort)).toBe(true);
    expect(new Set(without.map((bundle) => bundle.kyberPreKey?.keyId)).size).toBe(1);
    expect(await hits(directory, 'one_time_prekeys_per_device')).toBe(before + 10);

    // Half the stock is left, whatever the crowd does next.
    const targetKeys = keysAt(platform.gateway);
    const profile = JSON.parse(readFileSync(join(profiles, 'target', 'account.json'), 'utf8')) as {
      accountId: string;
      deviceId: number;
      deviceSecret: string;
    };
    const targetAuth = authorizationMetadata(profile);
    const stock = () => unary(targetKeys.getPreKeyCount.bind(targetKeys), {}, { metadata: targetAuth });
    expect(await stock()).toEqual({ ecCount: 50, kyberCount: 50 });
    await Promise.all(crowd.slice(0, 20).map((requester) => bundleOf(scripted.grpc, requester, target)));
    expect(await stock()).toEqual({ ecCount: 50, kyberCount: 50 });

    // Someone new writes to the target from a bundle without one-time keys; the target reads it.
    const latecomer = await SottoClient.register({
      profileDir: join(profiles, 'latecomer'),
      server: await from(scripted.grpc),
      username: newName(),
    });
    closers.push(latecomer);
    await latecomer.send(target.username, 'past the budget, still private');
    expect(await stock()).toEqual({ ecCount: 50, kyberCount: 50 });
    const stop = new AbortController();
    const received = await target.receive({
      waitSeconds: 60,
      signal: stop.signal,
      onMessage: () => stop.abort(),
    });
    expect(received.map((message) => [message.from, message.text])).toEqual([
      [latecomer.username, 'past the budget, still private'],
    ]);
  });

  it('never stops a person at the default limits: register, look up 5 contacts, 30 messages in a minute, reconnect', async () => {
    const contacts = await Promise.all(
      Array.from({ length: 5 }, (_, index) =>
        SottoClient.register({
          profileDir: join(profiles, `contact-${index}`),
          server: platform.gateway,
          username: newName(),
        }),
      ),
    );
    closers.push(...contacts);
    const person = await SottoClient.register({
      profileDir: join(profiles, 'person'),
      server: await from(defaults.grpc),
      username: newName(),
    });
    closers.push(person);
    for (const contact of contacts) expect(await person.lookup(contact.username)).toBe(contact.accountId);
    // Typing, then sending, as a chat app does: 30 messages and 30 typing indicators in a minute.
    const started = Date.now();
    for (let i = 0; i < 30; i++) {
      const contact = contacts[i % contacts.length];
      await person.sendTyping(contact.username);
      await person.send(contact.username, `message ${i}`);
    }
    // Faster than a person types: the pace, not a pause, is what kept them clear.
    expect(Date.now() - started).toBeLessThan(60_000);
    // Each contact answers; the person reconnects until every answer is in, then a few more times.
    for (const contact of contacts) await contact.send(person.username, `answer from ${contact.username}`);
    const answers: string[] = [];
    for (const deadline = Date.now() + 60_000; answers.length < contacts.length && Date.now() < deadline;) {
      const stop = new AbortController();
      let got = answers.length;
      const received = await person.receive({
        waitSeconds: 5,
        signal: stop.signal,
        onMessage: () => {
          got += 1;
          if (got >= contacts.length) stop.abort();
        },
      });
      answers.push(...received.map((message) => message.text));
    }
    expect(answers.sort()).toEqual(contacts.map((contact) => `answer from ${contact.username}`).sort());
    for (let i = 0; i < 3; i++) expect(await person.receive()).toEqual([]);

    const metrics = await metricsText(defaults);
    expect(metrics).not.toMatch(/^sotto_rate_limit_hits_total\{/m);
  });

  it('labels the counts of limit hits by limit and service only, never by account, device or address', async () => {
    for (const service of [scripted, directory]) {
      const metrics = await metricsText(service);
      const lines = metrics.split('\n').filter((line) => line.startsWith('sotto_rate_limit_hits_total{'));
      expect(lines.length).toBeGreaterThan(0);
      for (const line of lines) {
        expect(line).toMatch(/^sotto_rate_limit_hits_total\{limit="[a-z_]+",service="[a-z-]+"\} \d+$/);
      }
    }
  });

  it('lifts every limit with SOTTO_RATE_LIMITS=off, and each service says so as it starts', async () => {
    const [prober, target] = await Promise.all([register(), register(100)]);
    // Far past the default 100 lookups an hour.
    const names = Array.from({ length: 150 }, newName);
    for (let i = 0; i < names.length; i += 25) {
      const answers = await Promise.all(
        names.slice(i, i + 25).map((name) => outcome(lookupUsername(platform.gateway, prober, name))),
      );
      expect(answers.map((answer) => answer?.code)).toEqual(Array(answers.length).fill(status.NOT_FOUND));
    }
    // Past the directory's 60 fetches an hour of one target by one requester, and its 50 one-time keys a day.
    const bundles = [];
    for (let i = 0; i < 70; i++) bundles.push(...(await bundleOf(platform.gateway, prober, target)).bundles);
    expect(bundles.filter((bundle) => bundle.oneTimePreKey !== undefined)).toHaveLength(70);
    for (const service of ['gateway', 'prekey-directory', 'key-vault'] as const) {
      const log = readFileSync(platform.services[service].logFile, 'utf8');
      expect([service, log]).toEqual([
        service,
        expect.stringContaining('SOTTO_RATE_LIMITS=off: every rate limit'),
      ]);
    }
    expect(readFileSync(scripted.logFile, 'utf8')).not.toContain('SOTTO_RATE_LIMITS=off');
  });
});
