import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  MessagingServiceClient,
  type ConnectResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { authorizationMetadata, gatewayCredentials, SottoClient } from '@sotto/client-sdk';
import { metricsText, parseMetrics, startTestPlatform } from '@sotto/testing';

// Sealed sender's promise for what the operators see: no service's log lines nor any /metrics
// scrape name the sender of a sealed message, in any of the ways an account id gets printed;
// and the same probe finds the account as soon as a service does print it.

const SERVICES = [
  'gateway',
  'prekey-directory',
  'message-relay',
  'presence',
  'backup-store',
  'key-vault',
] as const;

/**
 * The ways an account id can be printed: its UUID with or without dashes (either case), the
 * 16 bytes themselves, and their base64 or base64url, wherever in a longer encoded run they start
 * (the characters that depend on those bytes alone, for each of the three alignments).
 */
function printedForms(accountId: string): { text: string; caseless: boolean }[] {
  const raw = Buffer.from(accountId.replace(/-/g, ''), 'hex');
  const encoded = [0, 1, 2].flatMap((shift) => {
    const padded = Buffer.concat([Buffer.alloc(shift), raw]);
    const from = Math.ceil((8 * shift) / 6);
    const to = Math.floor((8 * (shift + raw.length)) / 6);
    return [padded.toString('base64').slice(from, to), padded.toString('base64url').slice(from, to)];
  });
  return [
    { text: accountId, caseless: true },
    { text: accountId.replace(/-/g, ''), caseless: true },
    { text: raw.toString('latin1'), caseless: false },
    ...[...new Set(encoded)].map((text) => ({ text, caseless: false })),
  ];
}

/** Whether `text` prints `accountId` in any of its forms. */
function mentions(text: string, accountId: string): boolean {
  const lower = text.toLowerCase();
  return printedForms(accountId).some((form) =>
    form.caseless ? lower.includes(form.text.toLowerCase()) : text.includes(form.text),
  );
}

describe('what the services log and count of sealed sends', () => {
  let platform: Awaited<ReturnType<typeof startTestPlatform>>;
  const profiles = mkdtempSync(join(tmpdir(), 'sotto-sealed-logs-'));
  const clients: SottoClient[] = [];
  let stopped = false;

  beforeAll(async () => {
    // Every service logs all it ever does; the gateway keeps credentials it checked for long enough
    // to open a stream while the directory is down (the probe's own check, below).
    const loud = { LOG_LEVEL: 'trace' };
    platform = await startTestPlatform({
      ...Object.fromEntries(SERVICES.map((name) => [name, loud])),
      gateway: { ...loud, AUTH_CACHE_TTL_MS: '600000' },
    });
  });

  afterAll(async () => {
    for (const client of clients) client.close();
    if (!stopped) await platform?.stop();
    rmSync(profiles, { recursive: true, force: true });
  });

  async function register(who: string): Promise<SottoClient> {
    const username = `${who}_${randomUUID().replace(/-/g, '').slice(0, 8)}`;
    const client = await SottoClient.register({
      profileDir: join(profiles, username),
      server: platform.gateway,
      username,
      trustRoot: platform.senderCertificateTrustRoot,
    });
    clients.push(client);
    return client;
  }

  /** Receives until `count` messages came in, or 60 s passed. */
  async function receive(client: SottoClient, count: number) {
    const stop = new AbortController();
    let seen = 0;
    return client.receive({
      waitSeconds: 60,
      signal: stop.signal,
      onMessage: () => ++seen >= count && stop.abort(),
    });
  }

  const logOf = (name: (typeof SERVICES)[number]): string =>
    readFileSync(platform.services[name].logFile, 'utf8');

  it('names no sealed sender in any log line or metric, and the probe finds the sender once a service prints it', async () => {
    const alice = await register('alice');
    const bob = await register('bob');

    // Alice writes first, authenticated: the server is told she sends (and may say so anywhere).
    expect((await alice.send(bob.username, 'hello bob')).sealed).toBe(false);
    await receive(bob, 1);
    // From then on both seal (Alice once Bob's first message brought his profile key); Bob never
    // sends any other way, and each reads the other's sealed messages as from the other.
    const rounds = 3;
    for (let round = 0; round < rounds; round += 1) {
      expect((await bob.send(alice.username, `from bob ${round}`)).sealed).toBe(true);
      expect(await receive(alice, 1)).toMatchObject([{ from: bob.username, sealed: true }]);
      expect((await alice.send(bob.username, `from alice ${round}`)).sealed).toBe(true);
      expect(await receive(bob, 1)).toMatchObject([{ from: alice.username, sealed: true }]);
    }

    // Bob is a recipient too (of Alice's messages, the first one authenticated), so this asks more
    // than the promise does: nothing the services print names him at all.
    // Every service's metrics, scraped now: no series or label names Bob.
    const scrapes = await Promise.all(SERVICES.map((name) => metricsText(platform.services[name])));
    for (const [index, scrape] of scrapes.entries()) {
      expect([SERVICES[index], mentions(scrape, bob.accountId)]).toEqual([SERVICES[index], false]);
    }
    // They are the scrapes of this run: the gateway counted each sealed send.
    expect(
      parseMetrics(scrapes[0] ?? '').get(
        'sotto_grpc_server_handled_total{grpc_method="MessagingController.sendSealed",grpc_code="OK"}',
      ),
    ).toBe(2 * rounds);

    // Where each log stood once the sealed sends were done.
    const sealedPart = new Map(
      SERVICES.map((name) => [name, statSync(platform.services[name].logFile).size]),
    );

    // The probe's own check: with the directory down, the gateway opens Bob's stream from its
    // credential cache and logs, naming Bob's account, that it could not read his prekey count.
    await platform.services['prekey-directory'].stop();
    const messaging = new MessagingServiceClient(platform.gateway, gatewayCredentials(platform.gateway));
    try {
      const stream = messaging.connect(authorizationMetadata(bob.profile.account()));
      stream.on('error', () => undefined);
      await new Promise<void>((resolve) => stream.once('data', (_: ConnectResponse) => resolve()));
      const deadline = Date.now() + 30_000;
      while (!logOf('gateway').includes('prekey count of') && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      stream.end();
    } finally {
      messaging.close();
    }
    stopped = true;
    await platform.stop();

    // Read whole once every service has exited: all that was logged of the sealed sends names no
    // sealed sender, and what the gateway logged after names Bob, found by the same probe.
    for (const name of SERVICES) {
      const log = readFileSync(platform.services[name].logFile);
      const during = log.subarray(0, sealedPart.get(name)).toString('utf8');
      expect(during.length).toBeGreaterThan(0);
      expect([name, during.split('\n').filter((line) => mentions(line, bob.accountId))]).toEqual([name, []]);
    }
    const after = readFileSync(platform.services.gateway.logFile)
      .subarray(sealedPart.get('gateway'))
      .toString('utf8')
      .split('\n');
    expect(after.filter((line) => mentions(line, bob.accountId))).toContainEqual(
      expect.stringContaining(`prekey count of ${bob.accountId} unknown`),
    );
  });
});
