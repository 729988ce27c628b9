import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { PrivateKey, PublicKey, ServerCertificate } from '@signalapp/libsignal-client';
import { SottoClient } from '@sotto/client-sdk';
import { startGatewayFor, startTestPlatform, type TestService } from '@sotto/testing';

const base64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

describe('sender certificates in the SDK: fetched, checked against the pinned root, kept until near expiry', () => {
  let platform: Awaited<ReturnType<typeof startTestPlatform>>;
  const profiles = mkdtempSync(join(tmpdir(), 'sotto-sender-certificates-'));
  const clients: SottoClient[] = [];
  const services: TestService[] = [];

  beforeAll(async () => {
    platform = await startTestPlatform();
  });

  afterAll(async () => {
    for (const client of clients) client.close();
    await Promise.all(services.map((service) => service.stop()));
    await platform?.stop();
    rmSync(profiles, { recursive: true, force: true });
  });

  async function register(server: string, trustRoot?: string): Promise<SottoClient> {
    const username = `u_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
    const client = await SottoClient.register({
      profileDir: join(profiles, username),
      server,
      username,
      ...(trustRoot === undefined ? {} : { trustRoot }),
    });
    clients.push(client);
    return client;
  }

  it('returns a certificate naming this device and its identity key, valid under the pinned root, once', async () => {
    const client = await register(platform.gateway, platform.senderCertificateTrustRoot);
    const certificate = await client.senderCertificate();
    const root = PublicKey.deserialize(
      new Uint8Array(Buffer.from(platform.senderCertificateTrustRoot, 'base64')),
    );
    expect(certificate.senderUuid()).toBe(client.accountId);
    expect(certificate.senderDeviceId()).toBe(1);
    expect(certificate.validate(root, Date.now())).toBe(true);
    // Kept: the same certificate again, without asking the server.
    expect(await client.senderCertificate()).toBe(certificate);
  });

  it('refuses a certificate that does not chain to the pinned root, and needs a root to be pinned', async () => {
    const elsewhere = base64(PrivateKey.generate().getPublicKey().serialize());
    const misled = await register(platform.gateway, elsewhere);
    await expect(misled.senderCertificate()).rejects.toThrow(
      'does not validate against the pinned trust root',
    );
    const unpinned = await register(platform.gateway);
    await expect(unpinned.senderCertificate()).rejects.toThrow('no sealed-sender trust root is pinned');
    const garbled = await register(platform.gateway, 'not a key');
    await expect(garbled.senderCertificate()).rejects.toThrow(
      'the sealed-sender trust root is not a public key',
    );
  });

  it('fetches a new certificate once the one it holds is close to expiring', async () => {
    const root = PrivateKey.generate();
    const server = PrivateKey.generate();
    const gateway = await startGatewayFor(platform, {
      SENDER_CERTIFICATE_SERVER_CERTIFICATE: base64(
        ServerCertificate.new(2, server.getPublicKey(), root).serialize(),
      ),
      SENDER_CERTIFICATE_SERVER_KEY: base64(server.serialize()),
      SENDER_CERTIFICATE_TTL_MS: '3000',
    });
    services.push(gateway);
    const client = await register(gateway.grpc, base64(root.getPublicKey().serialize()));
    const first = await client.senderCertificate();
    expect(await client.senderCertificate()).toBe(first);
    // Replaced half-way through a lifetime this short (an hour before expiry for a day's).
    await delay(Math.max(0, (first.expiration() - Date.now()) / 2) + 200);
    const second = await client.senderCertificate();
    expect(second).not.toBe(first);
    expect(second.expiration()).toBeGreaterThan(first.expiration());
    expect(second.validate(root.getPublicKey(), Date.now())).toBe(true);
  });
});
