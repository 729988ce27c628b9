import { randomBytes, randomUUID } from 'node:crypto';
import { status, type ServiceError } from '@grpc/grpc-js';
import type { Redis } from 'ioredis';
import {
  authorizationMetadata,
  generateDeviceKeys,
  opaqueSendRequest,
  publicDeviceKeys,
  unary,
} from '@sotto/client-sdk';
import { MismatchedDevices } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import type { SendResponse } from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import {
  redisClientNamed,
  scrapeMetrics,
  startPlatformOnPrivateRedis,
  testRedis,
  type Platform,
  type PrivateRedis,
  type RedisClientEntry,
} from '@sotto/testing';
import { PublicApi, type Device } from './testing/public-api';

// The relay checks each Send against the recipient's device list, which it caches and drops when
// the directory says (over Redis pub/sub) that the account's devices changed. A sender who holds
// an old list, as a thief who kept it or a client that missed the change would, is refused with
// the lists to fix whatever the cache held: at once after the change, and while the relay cannot
// hear about changes at all.

/** The connection on which the relay hears of device-list changes (its CLIENT SETNAME). */
const RELAY_SUBSCRIBER = 'sotto-relay-device-lists';

/** A device of an account as the public API last made it: its id, registration id and credentials. */
interface AccountDevice extends Device {
  readonly username: string;
  readonly deviceId: number;
}

/** What a Send ended with: accepted, or refused with its code, message and device lists. */
type SendOutcome =
  | { readonly accepted: SendResponse }
  | { readonly code: status; readonly details: string; readonly mismatch?: MismatchedDevices };

describe("the relay's device-list cache, played against through the public API", () => {
  let redis: PrivateRedis;
  let admin: Redis;
  let platform: Platform;
  let api: PublicApi;

  beforeAll(async () => {
    // A Redis of this test's own: taking the relay's channel down must not touch other suites.
    ({ platform, redis } = await startPlatformOnPrivateRedis());
    admin = testRedis(redis.url);
    api = new PublicApi(platform.gateway);
  });

  afterAll(async () => {
    api?.close();
    await platform?.stop();
    admin?.disconnect();
    await redis?.stop();
  });

  const register = async (): Promise<AccountDevice> => {
    const username = `d_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
    return { ...(await api.register(username)), username, deviceId: 1 };
  };

  /** Each account's recovery credential, set by its owner before the first recovery. */
  const credentials = new Map<string, Buffer>();

  /** The account's owner (re)states its recovery credential, and a new phone recovers the account with it. */
  const recover = async (owner: AccountDevice): Promise<AccountDevice> => {
    const credential = credentials.get(owner.accountId) ?? randomBytes(32);
    credentials.set(owner.accountId, credential);
    await unary(
      api.accounts.setRecoveryCredential.bind(api.accounts),
      { recoveryCredential: credential, currentRecoveryCredential: credential },
      { metadata: owner.auth },
    );
    const keys = generateDeviceKeys(20);
    const recovered = await unary(api.accounts.recoverAccount.bind(api.accounts), {
      username: owner.username,
      recoveryCredential: credential,
      identityKey: Buffer.from(keys.identity.publicKey.serialize()),
      device: publicDeviceKeys(keys),
    });
    return {
      username: owner.username,
      accountId: recovered.accountId,
      deviceId: recovered.deviceId,
      registrationId: keys.registrationId,
      auth: authorizationMetadata(recovered),
    };
  };

  /** One opaque envelope from `from` to the device `to`, as a sender whose list is only that device. */
  const send = (from: AccountDevice, to: AccountDevice, body: string): Promise<SendOutcome> =>
    unary(api.messaging.send.bind(api.messaging), opaqueSendRequest(to, Buffer.from(body)), {
      metadata: from.auth,
    }).then(
      (accepted) => ({ accepted }),
      (error: unknown) => {
        const { code, details, metadata } = error as ServiceError;
        const trailer = metadata.get('sotto-mismatched-devices-bin')[0];
        return Buffer.isBuffer(trailer)
          ? { code, details, mismatch: MismatchedDevices.decode(trailer) }
          : { code, details };
      },
    );

  const mismatch = (missing: number[], extra: number[]): SendOutcome => ({
    code: status.FAILED_PRECONDITION,
    details: `device list mismatch: missing [${missing.join(', ')}], extra [${extra.join(', ')}], stale []`,
    mismatch: { missingDeviceIds: missing, extraDeviceIds: extra, staleDeviceIds: [] },
  });

  /** The relay's device-list lookups so far, by where the list came from. */
  const lookups = async (): Promise<{ cache: number; directory: number }> => {
    const samples = await scrapeMetrics(platform.services['message-relay']);
    const count = (source: string): number =>
      samples.get(`sotto_relay_device_list_lookups_total{source="${source}"}`) ?? 0;
    return { cache: count('cache'), directory: count('directory') };
  };

  /** Waits, checking Redis as fast as it answers, until the relay's subscriber is as `wanted` says. */
  const untilSubscriber = async (
    what: string,
    wanted: (subscriber: RedisClientEntry) => boolean,
  ): Promise<RedisClientEntry> => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const subscriber = await redisClientNamed(admin, RELAY_SUBSCRIBER);
      if (subscriber !== undefined && wanted(subscriber)) return subscriber;
      if (Date.now() > deadline) throw new Error(`the relay's subscriber never ${what}`);
      await admin.ping();
    }
  };

  /** The calls for device lists the directory has answered so far, as it counts them. */
  const directoryCalls = async (): Promise<number> => {
    const samples = await scrapeMetrics(platform.services['prekey-directory']);
    return [...samples]
      .filter(([name]) =>
        /^sotto_grpc_server_handled_total\{.*grpc_method="DirectoryController\.listDevices(Batch)?"/.test(
          name,
        ),
      )
      .reduce((sum, [, value]) => sum + value, 0);
  };

  it('reads the lists of many accounts it has not seen in a few directory calls, and refuses the unknown and the malformed each on its own', async () => {
    const alice = await register();
    const recipients: AccountDevice[] = [];
    for (let i = 0; i < 60; i++) recipients.push(await register());
    const [before, callsBefore] = [await lookups(), await directoryCalls()];

    const nobody = { accountId: randomUUID(), registrationId: 1 } as AccountDevice;
    const garbage = { accountId: "x' OR 1=1 --", registrationId: 1 } as AccountDevice;
    const outcomes = await Promise.all(
      [...recipients, nobody, garbage].map((to, i) => send(alice, to, `burst ${i}`)),
    );
    expect(outcomes.slice(0, recipients.length).every((outcome) => 'accepted' in outcome)).toBe(true);
    expect(outcomes.slice(recipients.length)).toEqual([
      { code: status.NOT_FOUND, details: 'account_id: no such account' },
      { code: status.INVALID_ARGUMENT, details: 'destination_account_id: is not an account id' },
    ]);
    // Every list came from the directory, in far fewer calls than lists: those read together share one.
    const [after, callsAfter] = [await lookups(), await directoryCalls()];
    expect(after.directory - before.directory).toBe(recipients.length + 1);
    expect(callsAfter - callsBefore).toBeLessThanOrEqual(recipients.length / 4);
    expect(await api.drain(recipients[17])).toEqual(['burst 17']);
    // The lists read are cached now; an account that did not exist is not.
    expect(await send(alice, recipients[0], 'cached')).toHaveProperty('accepted');
    expect(await send(alice, nobody, 'still nobody')).toEqual({
      code: status.NOT_FOUND,
      details: 'account_id: no such account',
    });
    const last = await lookups();
    expect([last.cache - after.cache, last.directory - after.directory]).toEqual([1, 1]);
  });

  it('refuses at once an envelope for a device that account recovery signed out, though the relay had cached the old list', async () => {
    const [alice, bob] = [await register(), await register()];
    // Warm: the relay now holds Bob's list (device 1) and answers from it.
    expect(await send(alice, bob, 'hello')).toHaveProperty('accepted');
    const before = await lookups();
    expect(await send(alice, bob, 'hello again')).toHaveProperty('accepted');
    expect((await lookups()).cache).toBe(before.cache + 1);

    // Recovered again and again: each time the list the relay cached names a device now signed out.
    let current = bob;
    for (let round = 1; round <= 3; round++) {
      const phone = await recover(current);
      expect(phone.deviceId).toBe(current.deviceId + 1);
      expect(await send(alice, current, `to the signed-out phone ${round}`)).toEqual(
        mismatch([phone.deviceId], [current.deviceId]),
      );
      // The refused envelope went nowhere: not to the new phone either.
      expect(await api.drain(phone)).toEqual([]);
      current = phone;
      // The relay caches the new list, for the next round to make stale.
      expect(await send(alice, current, `to the new phone ${round}`)).toHaveProperty('accepted');
    }
  });

  it('tells a sender with the old list of the device recovery added, and delivers once it names it', async () => {
    const [alice, bob] = [await register(), await register()];
    expect(await send(alice, bob, 'cached')).toHaveProperty('accepted');
    const phone = await recover(bob);
    const refused = await send(alice, bob, 'to the list I knew');
    expect(refused).toEqual(mismatch([phone.deviceId], [1]));
    expect(await send(alice, phone, 'to the new phone')).toHaveProperty('accepted');
    expect(await api.drain(phone)).toEqual(['to the new phone']);
  });

  it('answers sends correctly while the relay cannot hear of changes, and after it hears again', async () => {
    const [alice, bob] = [await register(), await register()];
    expect(await send(alice, bob, 'cached')).toHaveProperty('accepted');
    const subscribed = await untilSubscriber('subscribed', (subscriber) => subscriber.channels === 1);

    // The channel goes down and stays down: Redis takes channel rights away, which drops every
    // subscriber, and the relay's resubscription is refused; the directory's announcements fail.
    await admin.call('ACL', 'SETUSER', 'default', 'resetchannels');
    try {
      await untilSubscriber(
        'came back unsubscribed',
        (subscriber) => subscriber.id !== subscribed.id && subscriber.channels === 0,
      );
      const phone = await recover(bob);
      const before = await lookups();
      expect(await send(alice, bob, 'to the signed-out phone')).toEqual(mismatch([phone.deviceId], [1]));
      expect(await send(alice, phone, 'to the new phone')).toHaveProperty('accepted');
      expect(await send(alice, phone, 'again')).toHaveProperty('accepted');
      // Unheard, the relay asked the directory for every one of them, and cached nothing.
      const during = await lookups();
      expect(during.cache).toBe(before.cache);
      expect(during.directory - before.directory).toBeGreaterThanOrEqual(3);

      // A change nobody hears of: the phone is signed out in turn while the channel is down.
      const laterPhone = await recover(phone);
      expect(await send(alice, phone, 'to the phone signed out unheard')).toEqual(
        mismatch([laterPhone.deviceId], [phone.deviceId]),
      );

      // The channel comes back: the relay's subscriber, refused but connected, subscribes again.
      const refused = await untilSubscriber('reconnected', () => true);
      await admin.call('ACL', 'SETUSER', 'default', 'allchannels');
      await untilSubscriber(
        'resubscribed',
        (subscriber) => subscriber.id === refused.id && subscriber.channels === 1,
      );

      // What was missed is not served from the cache: it started empty. Not even the list the relay
      // had cached before the channel went down, which names Bob's first phone.
      expect(await send(alice, bob, 'to the first phone')).toEqual(
        mismatch([laterPhone.deviceId], [bob.deviceId]),
      );
      expect(await send(alice, phone, 'after the channel is back')).toEqual(
        mismatch([laterPhone.deviceId], [phone.deviceId]),
      );
      expect(await send(alice, laterPhone, 'to the latest phone')).toHaveProperty('accepted');
      const cached = await lookups();
      expect(await send(alice, laterPhone, 'from the cache')).toHaveProperty('accepted');
      expect((await lookups()).cache).toBe(cached.cache + 1);
      // And changes are heard again: the next recovery refuses the cached list at once.
      const lastPhone = await recover(laterPhone);
      expect(await send(alice, laterPhone, 'to the phone just signed out')).toEqual(
        mismatch([lastPhone.deviceId], [laterPhone.deviceId]),
      );
      expect(await api.drain(lastPhone)).toEqual([]);
    } finally {
      await admin.call('ACL', 'SETUSER', 'default', 'allchannels');
    }
  });
});
