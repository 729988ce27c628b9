import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { status, type Metadata } from '@grpc/grpc-js';
import { PrivateKey, PublicKey, SenderCertificate, ServerCertificate } from '@signalapp/libsignal-client';
import { authorizationMetadata, generateDeviceKeys, publicDeviceKeys, unary } from '@sotto/client-sdk';
import { parseEnvironment } from '@sotto/platform/config';
import { AccountServiceClient } from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import {
  gatewayCredentials,
  outcome,
  runServiceToExit,
  startGatewayFor,
  startTestPlatform,
  testInfra,
  type Platform,
  type TestService,
} from '@sotto/testing';
import { senderCertificateEnv } from './sender-certificate-env';

// Sealed-sender certificates, played by an attacker through the public API: the gateway issues
// one only to an authenticated device, naming that device and nobody else, under a chain that
// validates against the pinned trust root only, and only until it expires.

interface Device {
  accountId: string;
  deviceId: number;
  identityKey: PublicKey;
  auth: Metadata;
}

const base64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');
const bytesOf = (text: string): Uint8Array<ArrayBuffer> => new Uint8Array(Buffer.from(text, 'base64'));

/** A trust root and a server certificate under it, as `npm run sealed-sender:keys` makes them. */
function senderKeys(): { root: PrivateKey; variables: Record<string, string> } {
  const root = PrivateKey.generate();
  const server = PrivateKey.generate();
  const certificate = ServerCertificate.new(7, server.getPublicKey(), root);
  return {
    root,
    variables: {
      SENDER_CERTIFICATE_SERVER_CERTIFICATE: base64(certificate.serialize()),
      SENDER_CERTIFICATE_SERVER_KEY: base64(server.serialize()),
    },
  };
}

describe('sender certificates, through the public API', () => {
  let platform: Platform;
  let trustRoot: PublicKey;
  let accounts: AccountServiceClient;
  const extra: { service: TestService; client: AccountServiceClient }[] = [];

  beforeAll(async () => {
    platform = await startTestPlatform();
    trustRoot = PublicKey.deserialize(bytesOf(platform.senderCertificateTrustRoot));
    accounts = new AccountServiceClient(platform.gateway, gatewayCredentials());
  });

  afterAll(async () => {
    accounts?.close();
    for (const { client } of extra) client.close();
    await Promise.all(extra.map(({ service }) => service.stop()));
    await platform?.stop();
  });

  /** Another gateway in front of the platform's services, with `env` on top. */
  async function gatewayWith(env: Record<string, string>): Promise<AccountServiceClient> {
    const service = await startGatewayFor(platform, env);
    const client = new AccountServiceClient(service.grpc, gatewayCredentials());
    extra.push({ service, client });
    return client;
  }

  async function register(): Promise<Device> {
    const keys = generateDeviceKeys(2);
    const registered = await unary(accounts.register.bind(accounts), {
      username: `u_${randomUUID().replace(/-/g, '').slice(0, 12)}`,
      identityKey: Buffer.from(keys.identity.publicKey.serialize()),
      device: publicDeviceKeys(keys),
    });
    return {
      accountId: registered.accountId,
      deviceId: registered.deviceId,
      identityKey: keys.identity.publicKey,
      auth: authorizationMetadata(registered),
    };
  }

  async function certificateFor(
    device: Device,
    client: AccountServiceClient = accounts,
  ): Promise<SenderCertificate> {
    const { certificate } = await unary(
      client.getSenderCertificate.bind(client),
      {},
      { metadata: device.auth },
    );
    return SenderCertificate.deserialize(new Uint8Array(certificate));
  }

  it('refuses a caller without credentials, or with a wrong secret', async () => {
    const alice = await register();
    expect(await outcome(unary(accounts.getSenderCertificate.bind(accounts), {}))).toMatchObject({
      code: status.UNAUTHENTICATED,
      details: 'authorization: credentials are required',
    });
    const guessed = authorizationMetadata({
      accountId: alice.accountId,
      deviceId: alice.deviceId,
      deviceSecret: 'A'.repeat(43),
    });
    expect(
      await outcome(unary(accounts.getSenderCertificate.bind(accounts), {}, { metadata: guessed })),
    ).toMatchObject({ code: status.UNAUTHENTICATED });
  });

  it("names the calling device, with its account's identity key, and validates against the pinned root", async () => {
    const [alice, bob] = await Promise.all([register(), register()]);
    const before = Date.now();
    const [fromAlice, fromBob] = await Promise.all([certificateFor(alice), certificateFor(bob)]);
    const after = Date.now();

    for (const [device, certificate] of [
      [alice, fromAlice],
      [bob, fromBob],
    ] as const) {
      expect({
        uuid: certificate.senderUuid(),
        e164: certificate.senderE164(),
        deviceId: certificate.senderDeviceId(),
        identityKey: certificate.key().equals(device.identityKey),
      }).toEqual({ uuid: device.accountId, e164: null, deviceId: device.deviceId, identityKey: true });
      // 24 h by default, in Unix milliseconds.
      expect(certificate.expiration()).toBeGreaterThanOrEqual(before + 86_400_000);
      expect(certificate.expiration()).toBeLessThanOrEqual(after + 86_400_000);
      expect(certificate.validate(trustRoot, Date.now())).toBe(true);
    }
    expect(fromAlice.senderUuid()).not.toBe(fromBob.senderUuid());
  });

  it('does not validate against another trust root, nor once it has expired', async () => {
    const alice = await register();
    const certificate = await certificateFor(alice);
    expect(certificate.validate(PrivateKey.generate().getPublicKey(), Date.now())).toBe(false);
    // Nor against the gateway's own server key: only the root vouches for the chain.
    expect(certificate.validate(certificate.serverCertificate().key(), Date.now())).toBe(false);
    expect(certificate.validate(trustRoot, certificate.expiration() - 1)).toBe(true);
    expect(certificate.validate(trustRoot, certificate.expiration() + 1)).toBe(false);

    // A gateway issuing short-lived certificates under a root of its own: they validate against
    // that root until they expire, then no more.
    const { root, variables } = senderKeys();
    const shortLived = await gatewayWith({ ...variables, SENDER_CERTIFICATE_TTL_MS: '1500' });
    const brief = await certificateFor(alice, shortLived);
    const ownRoot = root.getPublicKey();
    expect(brief.validate(ownRoot, Date.now())).toBe(true);
    expect(brief.validate(trustRoot, Date.now())).toBe(false);
    await delay(Math.max(0, brief.expiration() - Date.now()) + 100);
    expect(brief.validate(ownRoot, Date.now())).toBe(false);
  });

  it('refuses a flood of requests from one device with RESOURCE_EXHAUSTED', async () => {
    const limited = await gatewayWith({ SOTTO_RATE_LIMITS: 'on', RATE_LIMIT_OTHER_CALLS_PER_DEVICE: '5/1h' });
    const mallory = await register();
    const flood = await Promise.all(
      Array.from({ length: 20 }, () =>
        outcome(unary(limited.getSenderCertificate.bind(limited), {}, { metadata: mallory.auth })),
      ),
    );
    expect(flood.filter((error) => error === undefined)).toHaveLength(5);
    const refused = flood.filter((error) => error !== undefined);
    expect(refused).toHaveLength(15);
    for (const error of refused) {
      expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(error.details).toMatch(/^too many calls from this device; retry in \d+ s$/);
      expect(Number(error.metadata.get('retry-after-ms')[0])).toBeGreaterThan(0);
    }
    // Another device's bucket is its own.
    expect(await certificateFor(await register(), limited)).toBeInstanceOf(SenderCertificate);
  });
});

describe('sender certificate settings', () => {
  const { root, variables } = senderKeys();

  it('refuses to start a gateway whose server key is not the one its certificate certifies', async () => {
    const { code, stderr } = await runServiceToExit('gateway', {
      REDIS_URL: testInfra().redisUrl ?? '',
      ...variables,
      // The trust root's own key: a private key, but not the certified one.
      SENDER_CERTIFICATE_SERVER_KEY: base64(root.serialize()),
    });
    expect(code).not.toBe(0);
    expect(stderr).toContain(
      'SENDER_CERTIFICATE_SERVER_KEY: is not the private key of the key SENDER_CERTIFICATE_SERVER_CERTIFICATE certifies',
    );
    expect(stderr).not.toContain(base64(root.serialize()));
  });

  it('names the variable that is not base64, not a certificate, not a key, or missing', () => {
    const problems = (env: Record<string, string>): string => {
      try {
        parseEnvironment(senderCertificateEnv, env);
        return 'accepted';
      } catch (error) {
        return (error as Error).message;
      }
    };
    expect(problems(variables)).toBe('accepted');
    expect(problems({ ...variables, SENDER_CERTIFICATE_SERVER_CERTIFICATE: 'not base64!' })).toContain(
      'SENDER_CERTIFICATE_SERVER_CERTIFICATE: expected base64',
    );
    expect(
      problems({ ...variables, SENDER_CERTIFICATE_SERVER_CERTIFICATE: base64(new Uint8Array(40)) }),
    ).toContain('SENDER_CERTIFICATE_SERVER_CERTIFICATE: is base64 but not a libsignal ServerCertificate');
    expect(problems({ ...variables, SENDER_CERTIFICATE_SERVER_KEY: base64(new Uint8Array(5)) })).toContain(
      'SENDER_CERTIFICATE_SERVER_KEY: is base64 but not a libsignal private key (32 bytes)',
    );
    expect(problems({ SENDER_CERTIFICATE_SERVER_KEY: variables['SENDER_CERTIFICATE_SERVER_KEY'] })).toContain(
      'SENDER_CERTIFICATE_SERVER_CERTIFICATE: is required',
    );
    expect(problems({ ...variables, SENDER_CERTIFICATE_TTL_MS: '0' })).toContain('SENDER_CERTIFICATE_TTL_MS');
  });
});
