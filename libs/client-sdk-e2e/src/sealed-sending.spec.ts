import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  IdentityKeyPair,
  PrivateKey,
  ProtocolAddress,
  ServerCertificate,
  processPreKeyBundle,
  sealedSenderEncryptMessage,
} from '@signalapp/libsignal-client';
import { EnvelopeType } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import {
  KeysServiceClient,
  MessagingServiceClient,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import {
  authorizationMetadata,
  deriveUnidentifiedAccessKey,
  gatewayCredentials,
  preKeyBundle,
  sendRequest,
  SottoClient,
  unary,
  type ReceivedMessage,
} from '@sotto/client-sdk';
import type { Notice } from '@sotto/client-sdk';
import {
  accountIdForms,
  MemoryIdentityStore,
  MemorySessionStore,
  repoRoot,
  startGatewayFor,
  startTestPlatform,
  storedHolding,
  type TestService,
} from '@sotto/testing';

const run = promisify(execFile);
const base64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

const bytes = (data: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(data);

describe('the SDK sends sealed once it has the contact’s profile key', () => {
  let platform: Awaited<ReturnType<typeof startTestPlatform>>;
  const profiles = mkdtempSync(join(tmpdir(), 'sotto-sealed-'));
  const clients: SottoClient[] = [];
  const services: TestService[] = [];
  const newName = (who: string) => `${who}_${randomUUID().replace(/-/g, '').slice(0, 8)}`;

  beforeAll(async () => {
    platform = await startTestPlatform();
  });

  afterAll(async () => {
    for (const client of clients) client.close();
    await Promise.all(services.map((service) => service.stop()));
    await platform?.stop();
    rmSync(profiles, { recursive: true, force: true });
  });

  async function register(
    who: string,
    server = platform.gateway,
    trustRoot = platform.senderCertificateTrustRoot,
  ) {
    const username = newName(who);
    const client = await SottoClient.register({
      profileDir: join(profiles, username),
      server,
      username,
      trustRoot,
    });
    clients.push(client);
    return client;
  }

  /** Receives until `count` messages came in (or 60 s passed), noting what else was noticed. */
  async function receive(
    client: SottoClient,
    count = 1,
  ): Promise<{ messages: ReceivedMessage[]; notices: Notice[] }> {
    const stop = new AbortController();
    const notices: Notice[] = [];
    let seen = 0;
    const messages = await client.receive({
      waitSeconds: 60,
      signal: stop.signal,
      onMessage: () => ++seen >= count && stop.abort(),
      onNotice: (notice) => {
        notices.push(notice);
        if (notice.kind === 'undecryptable' && ++seen >= count) stop.abort();
      },
    });
    return { messages, notices };
  }

  /** Drains the queue and returns whatever was in it, without waiting for more. */
  const drain = (client: SottoClient) => client.receive({ waitSeconds: 0 });

  it('after one message each way, sends sealed: the server keeps no sender, the recipient still knows who wrote', async () => {
    const alice = await register('alice');
    const bob = await register('bob');

    // First contact: Alice knows no profile key of Bob's, so the server is told who sends.
    const first = await alice.send(bob.username, 'hello bob');
    expect(first.sealed).toBe(false);
    expect((await receive(bob)).messages).toMatchObject([
      { from: alice.username, text: 'hello bob', sealed: false },
    ]);

    // Bob learned Alice's profile key from her message: his reply is sealed already.
    const reply = await bob.send(alice.username, 'hello alice');
    expect(reply.sealed).toBe(true);
    expect((await receive(alice)).messages).toMatchObject([
      { from: bob.username, text: 'hello alice', sealed: true },
    ]);

    const second = await alice.send(bob.username, 'sealed now');
    expect(second.sealed).toBe(true);
    expect(alice.history(bob.username).map((entry) => entry.kind === 'message' && entry.sealed)).toEqual([
      false,
      true,
      true,
    ]);

    // While Bob has not fetched it, Kafka and his Redis mailbox hold Alice's sealed envelope; nothing
    // the servers keep of it (nor of Bob's sealed reply) names its sender.
    for (const [guid, sender] of [
      [second.guids[0], alice.accountId],
      [reply.guids[0], bob.accountId],
    ] as const) {
      const pieces = await storedHolding({ databaseUrl: platform.databaseUrl }, guid);
      expect(pieces.length).toBeGreaterThan(0);
      for (const piece of pieces)
        for (const form of accountIdForms(sender))
          expect(piece.toString('latin1')).not.toContain(form.toString('latin1'));
    }
    // Bob's mailbox is among them: the envelope waits there for him, with no sender.
    const waiting = await storedHolding({ databaseUrl: platform.databaseUrl }, second.guids[0]);
    expect(waiting.some((piece) => piece.includes('sotto:mailbox:'))).toBe(true);
    // The scan would have seen a sender: Alice's authenticated first message names her.
    const authenticated = await storedHolding({ databaseUrl: platform.databaseUrl }, first.guids[0]);
    expect(authenticated.some((piece) => piece.includes(alice.accountId))).toBe(true);

    // Bob's `sotto receive --json` names Alice, from the certificate, and says it came sealed.
    const received = await run(
      process.execPath,
      [
        join(repoRoot(), 'apps/cli/bin/sotto.js'),
        ...['--server', platform.gateway, '--profile', bob.profile.dir, 'receive', '--wait', '3', '--json'],
      ],
      {
        cwd: repoRoot(),
        env: { ...process.env, SOTTO_SENDER_CERTIFICATE_TRUST_ROOT: platform.senderCertificateTrustRoot },
      },
    );
    expect(
      received.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as unknown),
    ).toEqual([
      {
        from: alice.username,
        text: 'sealed now',
        sentAt: expect.any(String) as string,
        guid: second.guids[0],
        sealed: true,
      },
    ]);
    expect(bob.history(alice.username).filter((entry) => entry.kind === 'message')).toMatchObject([
      { direction: 'in', from: alice.username, text: 'hello bob', sealed: false },
      { direction: 'out', text: 'hello alice', sealed: true },
      { direction: 'in', from: alice.username, text: 'sealed now', sealed: true },
    ]);
  });

  it('gives a profile made before profile keys one on its first send, announced before it is shared', async () => {
    const bob = await register('bob');
    const older = await register('carol');
    // As a profile from before sealed sending: no profile key, no access key on the server.
    older.profile.remove('profile-key.json');
    const carol = SottoClient.open({
      profileDir: older.profile.dir,
      server: platform.gateway,
      trustRoot: platform.senderCertificateTrustRoot,
    });
    clients.push(carol);
    expect((await carol.send(bob.username, 'still here')).sealed).toBe(false);
    expect(existsSync(join(carol.profile.dir, 'profile-key.json'))).toBe(true);
    await receive(bob);
    // The key Bob got is the one whose access key the server now holds: his reply goes sealed.
    expect((await bob.send(carol.username, 'welcome back')).sealed).toBe(true);
    expect((await receive(carol)).messages).toMatchObject([{ from: bob.username, sealed: true }]);
  });

  it('refuses as undecryptable a sealed message whose certificate chains to another trust root', async () => {
    // A gateway signing sender certificates under a root of its own, in front of the same services.
    const root = PrivateKey.generate();
    const server = PrivateKey.generate();
    const rogue = await startGatewayFor(platform, {
      SENDER_CERTIFICATE_SERVER_CERTIFICATE: base64(
        ServerCertificate.new(7, server.getPublicKey(), root).serialize(),
      ),
      SENDER_CERTIFICATE_SERVER_KEY: base64(server.serialize()),
    });
    services.push(rogue);
    const bob = await register('bob');
    const mallory = await register('mallory', rogue.grpc, base64(root.getPublicKey().serialize()));

    // Bob writes to Mallory first, so Mallory holds his profile key and a session with him.
    await bob.send(mallory.username, 'hi mallory');
    expect((await receive(mallory)).messages).toMatchObject([{ from: bob.username, sealed: false }]);

    const forged = await mallory.send(bob.username, 'trust me');
    expect(forged.sealed).toBe(true);
    const got = await receive(bob);
    expect(got.messages).toEqual([]);
    expect(got.notices).toMatchObject([
      { kind: 'undecryptable', contact: 'an unknown sender', guid: forged.guids[0] },
    ]);
    expect(bob.history().filter((entry) => entry.kind === 'message' && entry.direction === 'in')).toEqual([]);
    // Acknowledged: it does not come back.
    expect(await drain(bob)).toEqual([]);
  });

  it('acknowledges a garbage sealed envelope from a stranger holding the key as undecryptable, and reads on', async () => {
    const alice = await register('alice');
    const bob = await register('bob');
    // The stranger learned Bob's profile key, as any contact he wrote to may have.
    const profileKey = new Uint8Array(
      Buffer.from((bob.profile.readJson('profile-key.json') as { key: string }).key, 'base64'),
    );
    const stranger = new MessagingServiceClient(platform.gateway, gatewayCredentials(platform.gateway));
    try {
      const { guids } = await unary(stranger.sendSealed.bind(stranger), {
        ...sendRequest(bob.accountId, [
          {
            destinationDeviceId: 1,
            destinationRegistrationId: bob.profile.account().registrationId,
            type: EnvelopeType.ENVELOPE_TYPE_UNIDENTIFIED_SENDER,
            content: Buffer.from('not a sealed message at all'),
          },
        ]),
        unidentifiedAccessKey: Buffer.from(deriveUnidentifiedAccessKey(profileKey)),
      });
      await alice.send(bob.username, 'behind the garbage');
      const got = await receive(bob, 2);
      expect(got.notices).toMatchObject([
        { kind: 'undecryptable', contact: 'an unknown sender', guid: guids[0] },
      ]);
      expect(got.messages).toMatchObject([
        { from: alice.username, text: 'behind the garbage', sealed: false },
      ]);
      expect(await drain(bob)).toEqual([]);
    } finally {
      stranger.close();
    }
  });

  it('lets an account take sealed messages from anyone, without its key, only while it says so, and through a new profile key', async () => {
    const bob = await register('bob');
    const stranger = new MessagingServiceClient(platform.gateway, gatewayCredentials(platform.gateway));
    const keyless = () =>
      unary(stranger.sendSealed.bind(stranger), {
        ...sendRequest(bob.accountId, [
          {
            destinationDeviceId: 1,
            destinationRegistrationId: bob.profile.account().registrationId,
            type: EnvelopeType.ENVELOPE_TYPE_UNIDENTIFIED_SENDER,
            content: Buffer.from('a stranger, sealed'),
          },
        ]),
        unidentifiedAccessKey: Buffer.alloc(0),
      });
    const refused = { code: 16, details: 'unidentified_access_key: not accepted for this destination' };
    try {
      await expect(keyless()).rejects.toMatchObject(refused);
      await bob.acceptSealedFromAnyone(true);
      expect((await keyless()).guids).toHaveLength(1);
      // A new profile key keeps the choice.
      await bob.rotateProfileKey();
      expect((await keyless()).guids).toHaveLength(1);
      await bob.acceptSealedFromAnyone(false);
      await expect(keyless()).rejects.toMatchObject(refused);
      // The two that got in arrive, as undecryptable garbage from an unknown sender.
      const got = await receive(bob, 2);
      expect(got.notices.filter((notice) => notice.kind === 'undecryptable')).toHaveLength(2);
    } finally {
      stranger.close();
    }
  });

  it('refuses as undecryptable a sealed message whose valid certificate names the recipient’s own account', async () => {
    // Whoever copied Bob's profile (keys, credential, profile key) seals a message as Bob, to Bob.
    const bob = await register('bob');
    const account = bob.profile.account();
    const identity = IdentityKeyPair.deserialize(bytes(Buffer.from(account.identityKeyPair, 'base64')));
    const profileKey = new Uint8Array(
      Buffer.from((bob.profile.readJson('profile-key.json') as { key: string }).key, 'base64'),
    );
    const keys = new KeysServiceClient(platform.gateway, gatewayCredentials(platform.gateway));
    const messaging = new MessagingServiceClient(platform.gateway, gatewayCredentials(platform.gateway));
    try {
      const {
        bundles: [bundle],
      } = await unary(
        keys.getPreKeyBundle.bind(keys),
        { accountId: account.accountId, deviceId: 1 },
        { metadata: authorizationMetadata(account) },
      );
      const sessions = new MemorySessionStore();
      // The stolen identity key pair, trusting whatever key it is shown.
      const identities = new MemoryIdentityStore(identity.privateKey, account.registrationId, 'any');
      const address = ProtocolAddress.new(account.accountId, 1);
      await processPreKeyBundle(
        preKeyBundle(bundle),
        address,
        ProtocolAddress.new(account.accountId, 2),
        sessions,
        identities,
      );
      const content = await sealedSenderEncryptMessage(
        bytes(Buffer.from(JSON.stringify({ v: 1, text: 'from myself', sentAt: new Date().toISOString() }))),
        address,
        await bob.senderCertificate(),
        sessions,
        identities,
      );
      const { guids } = await unary(messaging.sendSealed.bind(messaging), {
        ...sendRequest(account.accountId, [
          {
            destinationDeviceId: 1,
            destinationRegistrationId: account.registrationId,
            type: EnvelopeType.ENVELOPE_TYPE_UNIDENTIFIED_SENDER,
            content: Buffer.from(content),
          },
        ]),
        unidentifiedAccessKey: Buffer.from(deriveUnidentifiedAccessKey(profileKey)),
      });
      const got = await receive(bob);
      expect(got.messages).toEqual([]);
      expect(got.notices).toMatchObject([
        { kind: 'undecryptable', contact: 'an unknown sender', guid: guids[0] },
      ]);
      expect(got.notices[0]).toMatchObject({ reason: expect.stringMatching(/self|this account/i) as string });
      expect(bob.history().filter((entry) => entry.kind === 'message')).toEqual([]);
    } finally {
      keys.close();
      messaging.close();
    }
  });

  it('falls back to an authenticated send when the contact’s access key is refused, delivering once', async () => {
    const alice = await register('alice');
    const bob = await register('bob');
    await alice.send(bob.username, 'one');
    await receive(bob);
    await bob.send(alice.username, 'two');
    await receive(alice);
    expect((await alice.send(bob.username, 'three')).sealed).toBe(true);
    await receive(bob);

    // Bob's new profile key changes the access key the server checks: Alice's is refused.
    await bob.rotateProfileKey();
    const sent = await alice.send(bob.username, 'four');
    expect(sent.sealed).toBe(false);
    expect(sent.guids).toHaveLength(1);
    expect((await receive(bob)).messages).toMatchObject([
      { from: alice.username, text: 'four', sealed: false },
    ]);
    expect(await drain(bob)).toEqual([]);
    expect(
      bob
        .history(alice.username)
        .filter((entry) => entry.kind === 'message' && entry.direction === 'in')
        .map((entry) => entry.kind === 'message' && entry.text),
    ).toEqual(['one', 'three', 'four']);

    // Until Bob writes again with his new key, Alice sends authenticated; then sealed again.
    expect((await alice.send(bob.username, 'five')).sealed).toBe(false);
    await receive(bob);
    await bob.send(alice.username, 'six');
    await receive(alice);
    expect((await alice.send(bob.username, 'seven')).sealed).toBe(true);
    expect((await receive(bob)).messages).toMatchObject([{ text: 'seven', sealed: true }]);
  });
});
