import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { status, type ServiceError } from '@grpc/grpc-js';
import type { Redis } from 'ioredis';
import { deriveUnidentifiedAccessKey, unary } from '@sotto/client-sdk';
import { EnvelopeType } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import {
  metricsText,
  redisClientNamed,
  scrapeMetrics,
  startGatewayFor,
  startPlatformOnPrivateRedis,
  testRedis,
  type Platform,
  type PrivateRedis,
  type RedisClientEntry,
  type TestService,
} from '@sotto/testing';
import { SEALED_SEND_REFUSED } from './messaging/sealed-sends';
import { PublicApi, type Device } from './testing/public-api';

// Each gateway checks sealed sends against the destinations' unidentified access (key, and whether
// anyone may send), which it caches and drops when the directory says (over Redis pub/sub) that an
// account's access changed. Whoever holds an old key, as a contact the owner stopped trusting would,
// is refused at once after the change, on every gateway, and while a gateway cannot hear of
// changes it asks the directory every time. Strangers' keys are refused alike whatever is cached.

/** The second gateway's name, which names its subscriber on the access-change channel (CLIENT SETNAME). */
const SECOND_GATEWAY = 'uak-spec-second';
const SECOND_SUBSCRIBER = `sotto-unidentified-access-${SECOND_GATEWAY}`;
/** The name of the gateway with the cache off. */
const UNCACHED_GATEWAY = 'uak-spec-uncached';

/** What a SendSealed ended with: accepted, or refused with its code and message. */
type Outcome = 'accepted' | { readonly code: status; readonly details: string };

const REFUSED: Outcome = { code: status.UNAUTHENTICATED, details: SEALED_SEND_REFUSED };
const newKey = (): Buffer => Buffer.from(deriveUnidentifiedAccessKey(randomBytes(32)));

describe("the gateway's unidentified-access cache, played against through the public API", () => {
  let redis: PrivateRedis;
  let admin: Redis;
  let platform: Platform;
  // The platform's gateway, where owners change their access; another that only takes sealed
  // sends; and one with the cache off. All in front of the same services, on the same Redis.
  let first: PublicApi;
  let second: PublicApi;
  let uncached: PublicApi;
  let secondGateway: TestService;
  let uncachedGateway: TestService;

  beforeAll(async () => {
    // A Redis of this test's own: taking the gateways' channel down must not touch other suites.
    ({ platform, redis } = await startPlatformOnPrivateRedis());
    admin = testRedis(redis.url);
    const onPrivateRedis = { REDIS_URL: redis.url };
    [secondGateway, uncachedGateway] = await Promise.all([
      startGatewayFor(platform, { ...onPrivateRedis, GATEWAY_ID: SECOND_GATEWAY }),
      startGatewayFor(platform, {
        ...onPrivateRedis,
        GATEWAY_ID: UNCACHED_GATEWAY,
        UNIDENTIFIED_ACCESS_CACHE_TTL_MS: '0',
      }),
    ]);
    first = new PublicApi(platform.gateway);
    second = new PublicApi(secondGateway.grpc);
    uncached = new PublicApi(uncachedGateway.grpc);
  });

  afterAll(async () => {
    for (const api of [first, second, uncached]) api?.close();
    await Promise.all([secondGateway?.stop(), uncachedGateway?.stop()]);
    await platform?.stop();
    admin?.disconnect();
    await redis?.stop();
  });

  /** The account's owner sets who may send it sealed messages, through the platform's gateway. */
  const setAccess = async (owner: Device, key: Uint8Array, unrestricted = false): Promise<void> => {
    await unary(
      first.accounts.setUnidentifiedAccess.bind(first.accounts),
      { unidentifiedAccessKey: Buffer.from(key), unrestrictedUnidentifiedAccess: unrestricted },
      { metadata: owner.auth },
    );
  };

  /** A sealed send of `body` to the destination's device 1, with no credential, through `api`'s gateway. */
  const sealed = (api: PublicApi, to: Device, key: Uint8Array, body: string): Promise<Outcome> =>
    unary(api.messaging.sendSealed.bind(api.messaging), {
      destinationAccountId: to.accountId,
      clientTimestampMs: String(Date.now()),
      ephemeral: false,
      unidentifiedAccessKey: Buffer.from(key),
      envelopes: [
        {
          destinationDeviceId: 1,
          destinationRegistrationId: to.registrationId,
          type: EnvelopeType.ENVELOPE_TYPE_UNIDENTIFIED_SENDER,
          content: Buffer.from(body),
        },
      ],
    }).then(
      (): Outcome => 'accepted',
      (error: unknown) => {
        const { code, details } = error as ServiceError;
        return { code, details };
      },
    );

  /**
   * The first `count` envelopes the device is handed on a stream (acknowledged), waiting for those
   * still being routed. Sends to one account are routed in the order they were accepted, so any
   * envelope that should have been refused would show among them.
   */
  const received = async (device: Device, count: number): Promise<string[]> => {
    const inbox = first.connect(device);
    try {
      const bodies: string[] = [];
      while (bodies.length < count) {
        const message = await inbox.next();
        if (message === 'end') throw new Error(`the stream ended: ${inbox.error?.details ?? 'no error'}`);
        if (message.envelope === undefined) continue;
        bodies.push(Buffer.from(message.envelope.content).toString());
        inbox.ack([message.envelope.guid]);
      }
      return bodies;
    } finally {
      inbox.call.end();
    }
  };

  /** A gateway's access lookups so far, by where the access came from. */
  const lookups = async (gateway: { metrics: string }): Promise<{ cache: number; directory: number }> => {
    const samples = await scrapeMetrics(gateway);
    const count = (source: string): number =>
      samples.get(`sotto_gateway_unidentified_access_lookups_total{source="${source}"}`) ?? 0;
    return { cache: count('cache'), directory: count('directory') };
  };

  /** The reads of unidentified access the directory has answered so far, one or many accounts each. */
  const directoryReads = async (): Promise<number> => {
    const samples = await scrapeMetrics(platform.services['prekey-directory']);
    return [...samples]
      .filter(([name]) =>
        /^sotto_grpc_server_handled_total\{.*grpc_method="DirectoryController\.getUnidentifiedAccess(Batch)?"/.test(
          name,
        ),
      )
      .reduce((sum, [, value]) => sum + value, 0);
  };

  /** Waits, checking Redis as fast as it answers, until the second gateway's subscriber is as `wanted` says. */
  const untilSubscriber = async (
    what: string,
    wanted: (subscriber: RedisClientEntry) => boolean,
  ): Promise<RedisClientEntry> => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const subscriber = await redisClientNamed(admin, SECOND_SUBSCRIBER);
      if (subscriber !== undefined && wanted(subscriber)) return subscriber;
      if (Date.now() > deadline) throw new Error(`the second gateway's subscriber never ${what}`);
      await admin.ping();
    }
  };

  it('refuses an old key at once on a gateway that had it cached, once its owner changed it through another, and takes the new one', async () => {
    const bob = await first.register();
    let key = newKey();
    await setAccess(bob, key);
    const accepted: string[] = [];
    for (let round = 1; round <= 3; round++) {
      // The second gateway holds Bob's access now, and answers from it.
      expect(await sealed(second, bob, key, `warm ${round}`)).toBe('accepted');
      const before = await lookups(secondGateway);
      expect(await sealed(second, bob, key, `cached ${round}`)).toBe('accepted');
      expect((await lookups(secondGateway)).cache).toBe(before.cache + 1);
      accepted.push(`warm ${round}`, `cached ${round}`);

      const old = key;
      key = newKey();
      await setAccess(bob, key);
      // At once, on the gateway that cached the old key and on the one that took the change.
      for (const api of [second, first]) {
        expect(await sealed(api, bob, old, `with the old key ${round}`)).toEqual(REFUSED);
      }
      expect(await sealed(second, bob, key, `with the new key ${round}`)).toBe('accepted');
      accepted.push(`with the new key ${round}`);
    }
    // Nothing sent with an old key went anywhere.
    expect(await received(bob, accepted.length)).toEqual(accepted);
  });

  it('takes effect at once when an account stops, or starts, accepting sealed messages from anyone', async () => {
    const bob = await first.register();
    const key = newKey();
    await setAccess(bob, key, true);
    // Cached on the second gateway: open to anyone, with no key or a made-up one.
    expect(await sealed(second, bob, new Uint8Array(), 'no key')).toBe('accepted');
    const before = await lookups(secondGateway);
    expect(await sealed(second, bob, newKey(), 'any key')).toBe('accepted');
    expect((await lookups(secondGateway)).cache).toBe(before.cache + 1);

    await setAccess(bob, key, false);
    expect(await sealed(second, bob, new Uint8Array(), 'no key, now closed')).toEqual(REFUSED);
    expect(await sealed(second, bob, newKey(), 'any key, now closed')).toEqual(REFUSED);
    expect(await sealed(second, bob, key, 'the key')).toBe('accepted');

    await setAccess(bob, key, true);
    expect(await sealed(second, bob, new Uint8Array(), 'no key, open again')).toBe('accepted');
    expect(await received(bob, 4)).toEqual(['no key', 'any key', 'the key', 'no key, open again']);
  });

  it("refuses a stranger's wrong key, no key and another account's key alike while the right key is cached, and logs and counts no account", async () => {
    const [bob, carol] = [await first.register(), await first.register()];
    const [bobsKey, carolsKey] = [newKey(), newKey()];
    await setAccess(bob, bobsKey);
    await setAccess(carol, carolsKey);
    expect(await sealed(second, bob, bobsKey, 'from a contact')).toBe('accepted');

    const before = await lookups(secondGateway);
    for (const guess of [newKey(), new Uint8Array(), carolsKey]) {
      expect(await sealed(second, bob, guess, 'from a stranger')).toEqual(REFUSED);
    }
    // Checked against the cached access: the guesses cost the directory nothing.
    const after = await lookups(secondGateway);
    expect([after.cache - before.cache, after.directory - before.directory]).toEqual([3, 0]);
    // An account that does not exist gets the same answer, and is asked of the directory each time.
    const nobody = { accountId: randomUUID(), registrationId: 1, auth: bob.auth };
    for (let i = 0; i < 2; i++) expect(await sealed(second, nobody, bobsKey, 'to nobody')).toEqual(REFUSED);
    const last = await lookups(secondGateway);
    expect([last.cache - after.cache, last.directory - after.directory]).toEqual([0, 2]);

    expect(await sealed(second, bob, bobsKey, 'from a contact again')).toBe('accepted');
    expect(await received(bob, 2)).toEqual(['from a contact', 'from a contact again']);
    // The cache is keyed by the destination alone, and the gateway names it nowhere.
    for (const account of [bob.accountId, carol.accountId, nobody.accountId]) {
      expect(await metricsText(secondGateway)).not.toContain(account);
      expect(readFileSync(secondGateway.logFile, 'utf8')).not.toContain(account);
    }
  });

  it('reads the directory once for a burst of sealed sends to one account, not once per send', async () => {
    const dave = await first.register();
    const key = newKey();
    await setAccess(dave, key);
    const before = await directoryReads();
    const burst = await Promise.all(
      Array.from({ length: 50 }, (_, i) => sealed(second, dave, key, `burst ${i}`)),
    );
    expect(burst.every((outcome) => outcome === 'accepted')).toBe(true);
    expect((await directoryReads()) - before).toBe(1);
    for (let i = 0; i < 10; i++) expect(await sealed(second, dave, key, `after ${i}`)).toBe('accepted');
    expect((await directoryReads()) - before).toBe(1);
    expect(await received(dave, 60)).toHaveLength(60);
  });

  it('reads the directory for every sealed send with the cache off', async () => {
    const erin = await first.register();
    const key = newKey();
    await setAccess(erin, key);
    const before = await directoryReads();
    for (let i = 0; i < 5; i++) expect(await sealed(uncached, erin, key, `uncached ${i}`)).toBe('accepted');
    expect((await directoryReads()) - before).toBe(5);
    expect(await lookups(uncachedGateway)).toEqual({ cache: 0, directory: 5 });
    // Nor does it listen for changes: it has nothing to drop.
    expect(await redisClientNamed(admin, `sotto-unidentified-access-${UNCACHED_GATEWAY}`)).toBeUndefined();
    expect(await redisClientNamed(admin, SECOND_SUBSCRIBER)).toBeDefined();
  });

  it('answers sealed sends correctly while a gateway cannot hear of changes, and after it hears again', async () => {
    const bob = await first.register();
    const firstKey = newKey();
    await setAccess(bob, firstKey);
    expect(await sealed(second, bob, firstKey, 'cached')).toBe('accepted');
    const subscribed = await untilSubscriber('subscribed', (subscriber) => subscriber.channels === 1);

    // The channel goes down and stays down: Redis takes channel rights away, which drops every
    // subscriber, and the gateway's resubscription is refused; the directory's notices fail.
    await admin.call('ACL', 'SETUSER', 'default', 'resetchannels');
    try {
      await untilSubscriber(
        'came back unsubscribed',
        (subscriber) => subscriber.id !== subscribed.id && subscriber.channels === 0,
      );
      // A change nobody hears of: the old key is refused all the same, and the new one taken.
      const secondKey = newKey();
      await setAccess(bob, secondKey);
      const before = await lookups(secondGateway);
      expect(await sealed(second, bob, firstKey, 'with the first key, unheard')).toEqual(REFUSED);
      expect(await sealed(second, bob, secondKey, 'with the second key')).toBe('accepted');
      expect(await sealed(second, bob, secondKey, 'again')).toBe('accepted');
      // Unheard, the gateway asked the directory for every one of them, and cached nothing.
      const during = await lookups(secondGateway);
      expect([during.cache - before.cache, during.directory - before.directory]).toEqual([0, 3]);

      // The channel comes back: the gateway's subscriber, refused but connected, subscribes again.
      const refused = await untilSubscriber('reconnected', () => true);
      await admin.call('ACL', 'SETUSER', 'default', 'allchannels');
      await untilSubscriber(
        'resubscribed',
        (subscriber) => subscriber.id === refused.id && subscriber.channels === 1,
      );
      // Nothing from before is served: not even the first key, which it had cached.
      expect(await sealed(second, bob, firstKey, 'with the first key, after')).toEqual(REFUSED);
      expect(await sealed(second, bob, secondKey, 'after the channel is back')).toBe('accepted');
      const cached = await lookups(secondGateway);
      expect(await sealed(second, bob, secondKey, 'from the cache')).toBe('accepted');
      expect((await lookups(secondGateway)).cache).toBe(cached.cache + 1);
      // And changes are heard again: the next one refuses the cached key at once.
      const thirdKey = newKey();
      await setAccess(bob, thirdKey);
      expect(await sealed(second, bob, secondKey, 'with the second key, changed')).toEqual(REFUSED);
      expect(await sealed(second, bob, thirdKey, 'with the third key')).toBe('accepted');
      expect(await received(bob, 6)).toEqual([
        'cached',
        'with the second key',
        'again',
        'after the channel is back',
        'from the cache',
        'with the third key',
      ]);
    } finally {
      await admin.call('ACL', 'SETUSER', 'default', 'allchannels');
    }
  });
});
