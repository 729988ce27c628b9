import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { generateDeviceKeys, publicDeviceKeys, unary } from '@sotto/client-sdk';
import {
  outcome,
  startGatewayFor,
  startPrivateRedis,
  startTestPlatform,
  type Platform,
  type PrivateRedis,
  type TestService,
} from '@sotto/testing';
import { PublicApi, type Device } from '../testing/public-api';

// Rate limits live in Redis. With Redis gone the limited calls fail closed: UNAVAILABLE, saying
// why, well within the caller's deadline; nothing gets through unlimited, and once Redis is back
// the same calls are served again.

/** The deadline every call here carries: an answer must come well before it, never a hang. */
const DEADLINE_MS = 5_000;
const UNAVAILABLE_DETAILS = /^rate limits are unavailable \(Redis .+\); try again$/;

const newName = (): string => `r_${randomUUID().replace(/-/g, '').slice(0, 12)}`;

describe('rate-limited calls while the gateway’s Redis is down', () => {
  let platform: Platform;
  let redis: PrivateRedis;
  let gateway: TestService;
  let api: PublicApi;
  let alice: Device & { username: string };
  let bob: Device & { username: string };

  beforeAll(async () => {
    platform = await startTestPlatform();
    redis = await startPrivateRedis();
    // A gateway with its limits on (at their defaults), whose Redis is the test's own.
    gateway = await startGatewayFor(platform, { SOTTO_RATE_LIMITS: 'on', REDIS_URL: redis.url });
    api = new PublicApi(gateway.grpc);
    const named = async (): Promise<Device & { username: string }> => {
      const username = newName();
      return { ...(await api.register(username)), username };
    };
    [alice, bob] = [await named(), await named()];
  });

  afterAll(async () => {
    api?.close();
    await gateway?.stop();
    await redis?.stop();
    await platform?.stop();
  });

  const register = (username = newName()) => {
    const keys = generateDeviceKeys(1);
    return unary(
      api.accounts.register.bind(api.accounts),
      {
        username,
        identityKey: Buffer.from(keys.identity.publicKey.serialize()),
        device: publicDeviceKeys(keys),
      },
      { deadlineMs: DEADLINE_MS },
    );
  };
  const lookup = (caller: Device, username: string) =>
    unary(
      api.accounts.lookupUsername.bind(api.accounts),
      { username },
      { metadata: caller.auth, deadlineMs: DEADLINE_MS },
    );

  it('answers Register, LookupUsername and Send with UNAVAILABLE while Redis is down, lets none of a flood through, and serves them again once it is back', async () => {
    // Served while Redis is up.
    expect(await lookup(alice, bob.username)).toMatchObject({ accountId: bob.accountId });
    expect(await outcome(api.send(alice, bob, 'before'))).toBeUndefined();

    await redis.stop();

    const started = Date.now();
    const flood = Array.from({ length: 30 }, () => newName());
    const answers = await Promise.all([
      outcome(lookup(alice, bob.username)),
      outcome(api.send(alice, bob, 'while down')),
      ...flood.map((username) => outcome(register(username))),
    ]);
    for (const answer of answers) {
      expect({ code: answer?.code, details: answer?.details }).toEqual({
        code: status.UNAVAILABLE,
        details: expect.stringMatching(UNAVAILABLE_DETAILS),
      });
    }
    // Every answer came well before the deadline (which would have been DEADLINE_EXCEEDED).
    expect(Date.now() - started).toBeLessThan(DEADLINE_MS);

    await redis.start();

    // The gateway reconnects on its own; until it has, calls still answer UNAVAILABLE.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const answer = await outcome(lookup(alice, bob.username));
      if (answer === undefined) break;
      expect(answer.code).toBe(status.UNAVAILABLE);
      if (Date.now() > deadline) throw new Error('the gateway did not serve again after Redis came back');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(await outcome(api.send(alice, bob, 'after'))).toBeUndefined();
    expect(await outcome(register())).toBeUndefined();
    // Not one of the flood's sign-ups was made.
    for (const username of flood) {
      expect(await outcome(lookup(alice, username))).toMatchObject({ code: status.NOT_FOUND });
    }
  });
});
