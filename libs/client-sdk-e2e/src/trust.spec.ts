import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import {
  SottoClient,
  UntrustedIdentityError,
  type Notice,
  type ReceivedMessage,
  type TypingIndicator,
} from '@sotto/client-sdk';
import { operatorDatabaseUrl, startTestPlatform } from '@sotto/testing';

interface Got {
  readonly messages: ReceivedMessage[];
  readonly notices: Notice[];
}

/** Listens until `enough` says so (routing is asynchronous), then stops; what arrived meanwhile. */
async function receiveUntil(client: SottoClient, enough: (got: Got) => boolean): Promise<Got> {
  const got: Got = { messages: [], notices: [] };
  const stop = new AbortController();
  const check = () => {
    if (enough(got)) stop.abort();
  };
  await client.receive({
    waitSeconds: 60,
    signal: stop.signal,
    onMessage: (message) => {
      got.messages.push(message);
      check();
    },
    onNotice: (notice) => {
      got.notices.push(notice);
      check();
    },
  });
  return got;
}

const messages = (count: number) => (got: Got) => got.messages.length >= count;
const said = (got: Got) => got.messages.map((message) => [message.from, message.text]);

describe('trust, end to end: who wrote, whose keys, and what cannot be read', () => {
  let platform: Awaited<ReturnType<typeof startTestPlatform>>;
  const profiles = mkdtempSync(join(tmpdir(), 'sotto-trust-'));
  const tag = randomUUID().replace(/-/g, '').slice(0, 8);
  const name = (who: string) => `${who}_${tag}`;
  const clients: SottoClient[] = [];

  const register = async (who: string) => {
    const client = await SottoClient.register({
      profileDir: join(profiles, who),
      server: platform.gateway,
      username: name(who),
    });
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    platform = await startTestPlatform();
  });

  afterAll(async () => {
    for (const client of clients) client.close();
    await platform?.stop();
    rmSync(profiles, { recursive: true, force: true });
  });

  it('names a sender by the account the server authenticated, whatever the message claims; the reply reaches the real contact', async () => {
    const [alice, bob, mallory] = [await register('alice'), await register('bob'), await register('mallory')];
    await alice.send(name('bob'), 'hi Bob, Alice here');
    expect(said(await receiveUntil(bob, messages(1)))).toEqual([[name('alice'), 'hi Bob, Alice here']]);
    mallory.close();

    // Mallory makes her client claim Alice's name: it writes `from: alice` into all it sends.
    const accountFile = join(profiles, 'mallory', 'account.json');
    const account = JSON.parse(readFileSync(accountFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(accountFile, JSON.stringify({ ...account, username: name('alice') }));
    const spoofer = SottoClient.open({ profileDir: join(profiles, 'mallory'), server: platform.gateway });
    clients.push(spoofer);
    expect(spoofer.username).toBe(name('alice'));
    await spoofer.send(name('bob'), 'Alice here, new number: send the key there');

    const got = await receiveUntil(bob, messages(1));
    expect(said(got)).toEqual([[name('mallory'), 'Alice here, new number: send the key there']]);
    expect(bob.history(name('alice')).map((entry) => entry.kind === 'message' && entry.text)).toEqual([
      'hi Bob, Alice here',
    ]);
    expect(bob.history(name('mallory'))).toMatchObject([
      { kind: 'message', direction: 'in', from: name('mallory'), to: name('bob') },
    ]);

    // Bob's reply to alice goes to Alice's account, not Mallory's.
    await bob.send(name('alice'), 'a reply for Alice');
    expect(said(await receiveUntil(alice, messages(1)))).toEqual([[name('bob'), 'a reply for Alice']]);
    expect(await spoofer.receive()).toEqual([]);

    // A typing indicator names its sender the same way.
    const typing: TypingIndicator[] = [];
    const stop = new AbortController();
    let drained!: () => void;
    const ready = new Promise<void>((resolve) => (drained = resolve));
    const listening = bob.receive({
      waitSeconds: 60,
      signal: stop.signal,
      onDrained: drained,
      onTyping: (indicator) => {
        typing.push(indicator);
        stop.abort();
      },
    });
    await ready;
    await spoofer.sendTyping(name('bob'));
    await listening;
    expect(typing).toEqual([{ from: name('mallory') }]);
  });

  it('shows a changed identity with a warning, refuses to send until it is accepted, then sends again', async () => {
    const [dora, carol] = [await register('dora'), await register('carol')];
    await carol.send(name('dora'), 'before');
    expect(said(await receiveUntil(dora, messages(1)))).toEqual([[name('carol'), 'before']]);
    const before = await dora.safetyNumber(name('carol'));

    // Carol's account moves to a new device with a new identity key (a restore; or whoever has her recovery key).
    const { recoveryKey } = await carol.createBackup();
    const restored = await SottoClient.restore({
      profileDir: join(profiles, 'carol-new'),
      server: platform.gateway,
      username: name('carol'),
      recoveryKey,
    });
    const carolNew = restored.client;
    clients.push(carolNew);
    await carolNew.send(name('dora'), 'new phone');

    // Still read and shown, with the warning: in the message, as a notice, and in history.
    const got = await receiveUntil(dora, messages(1));
    expect(got.messages).toMatchObject([
      { from: name('carol'), text: 'new phone', safetyNumberChanged: true },
    ]);
    expect(got.notices).toEqual([
      { kind: 'safety-number-changed', contact: name('carol'), at: expect.any(String) as string },
    ]);
    expect(dora.history(name('carol')).map((entry) => entry.kind)).toEqual([
      'message',
      'safety-number-changed',
      'message',
    ]);
    expect(dora.history(name('carol'))[2]).toMatchObject({ text: 'new phone', safetyNumberChanged: true });

    // Nothing goes out to the new key, not even a typing indicator, until Dora accepts it.
    const refusal = await dora.send(name('carol'), 'is that you?').catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(UntrustedIdentityError);
    expect(refusal).toMatchObject({ username: name('carol') });
    await expect(dora.sendTyping(name('carol'))).rejects.toThrow(UntrustedIdentityError);
    expect(await carolNew.receive()).toEqual([]);

    // The number to compare is the new key's, and both sides show the same.
    const after = await dora.safetyNumber(name('carol'));
    expect(after).not.toBe(before);
    expect(await carolNew.safetyNumber(name('dora'))).toBe(after);

    expect(await dora.trust(name('carol'))).toEqual({ changed: true, safetyNumber: after });
    expect(await dora.trust(name('carol'))).toEqual({ changed: false, safetyNumber: after });
    await dora.send(name('carol'), 'welcome back');
    expect(said(await receiveUntil(carolNew, messages(1)))).toEqual([[name('dora'), 'welcome back']]);
    await carolNew.send(name('dora'), 'thanks');
    const next = await receiveUntil(dora, messages(1));
    expect(next.messages).toMatchObject([{ text: 'thanks', safetyNumberChanged: false }]);
    expect(next.notices).toEqual([]);
    expect(dora.history(name('carol')).map((entry) => entry.kind)).toEqual([
      'message',
      'safety-number-changed',
      'message',
      'safety-number-accepted',
      'message',
      'message',
    ]);
  });

  it('acknowledges and records what it cannot decrypt, delivers what follows, and starts a new session on the next send', async () => {
    const [erin, finn] = [await register('erin'), await register('finn')];
    await erin.send(name('finn'), 'one');
    expect(said(await receiveUntil(finn, messages(1)))).toEqual([[name('erin'), 'one']]);
    await finn.send(name('erin'), 'two');
    expect(said(await receiveUntil(erin, messages(1)))).toEqual([[name('finn'), 'two']]);

    // Finn's device loses its session with Erin's (a crash, an old copy of the profile): what Erin sends on it is unreadable.
    const sessions = join(profiles, 'finn', 'sessions');
    for (const file of readdirSync(sessions))
      if (file.startsWith(erin.accountId)) rmSync(join(sessions, file));
    await erin.send(name('finn'), 'lost');
    await erin.send(name('finn'), 'also lost');
    const lost = await receiveUntil(finn, (got) => got.notices.length >= 2);
    expect(lost.messages).toEqual([]);
    expect(lost.notices).toMatchObject([
      { kind: 'undecryptable', contact: name('erin') },
      { kind: 'undecryptable', contact: name('erin') },
    ]);
    expect(await finn.receive()).toEqual([]);

    // Finn's next message starts a new session from a fresh bundle; Erin reads it, and what she sends next is read.
    await finn.send(name('erin'), 'say again?');
    expect(said(await receiveUntil(erin, messages(1)))).toEqual([[name('finn'), 'say again?']]);
    await erin.send(name('finn'), 'found you');
    expect(said(await receiveUntil(finn, messages(1)))).toEqual([[name('erin'), 'found you']]);
    expect(finn.history(name('erin')).map((entry) => entry.kind)).toEqual([
      'message',
      'message',
      'undecryptable',
      'undecryptable',
      'message',
      'message',
    ]);
  });

  it('rebinds a username only when the directory says it moved, and says so', async () => {
    const [gus, hal, ivy] = [await register('gus'), await register('hal'), await register('ivy')];
    await hal.send(name('gus'), 'from the first hal');
    expect(said(await receiveUntil(gus, messages(1)))).toEqual([[name('hal'), 'from the first hal']]);

    // The directory gives the name hal to another account (Ivy's); the first Hal is renamed.
    const db = new Client({ connectionString: operatorDatabaseUrl(platform.databaseUrl) });
    await db.connect();
    try {
      await db.query('UPDATE directory.accounts SET username = $2 WHERE username = $1', [
        name('hal'),
        name('hal_old'),
      ]);
      await db.query('UPDATE directory.accounts SET username = $2 WHERE username = $1', [
        name('ivy'),
        name('hal'),
      ]);
    } finally {
      await db.end();
    }

    await ivy.send(name('gus'), 'from the account now called hal');
    const got = await receiveUntil(gus, messages(1));
    expect(got.notices).toEqual([
      { kind: 'username-moved', contact: name('hal'), at: expect.any(String) as string },
    ]);
    expect(said(got)).toEqual([[name('hal'), 'from the account now called hal']]);

    // The first Hal is named by the name it holds now.
    await hal.send(name('gus'), 'still me');
    expect(said(await receiveUntil(gus, messages(1)))).toEqual([[name('hal_old'), 'still me']]);
    await gus.send(name('hal'), 'to whoever is hal now');
    expect(said(await receiveUntil(ivy, messages(1)))).toEqual([[name('gus'), 'to whoever is hal now']]);
  });
});
