import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IdentityKeyPair } from '@signalapp/libsignal-client';
import { SottoClient, type TypingIndicator } from '@sotto/client-sdk';
import { everythingStored, walk, startTestPlatform } from '@sotto/testing';

describe('SottoClient, end to end', () => {
  let platform: Awaited<ReturnType<typeof startTestPlatform>>;
  const profiles = mkdtempSync(join(tmpdir(), 'sotto-profiles-'));
  let alice: SottoClient;
  let bob: SottoClient;
  const aliceName = `alice_${randomUUID().replace(/-/g, '').slice(0, 8)}`;
  const bobName = `bob_${randomUUID().replace(/-/g, '').slice(0, 8)}`;
  const secrets = [`hidden-${randomUUID()}`, `also-hidden-${randomUUID()}`, `third-${randomUUID()}`];
  const reply = `reply-${randomUUID()}`;
  const sentGuids: string[] = [];

  beforeAll(async () => {
    platform = await startTestPlatform();
    alice = await SottoClient.register({
      profileDir: join(profiles, 'alice'),
      server: platform.gateway,
      username: aliceName,
    });
    bob = await SottoClient.register({
      profileDir: join(profiles, 'bob'),
      server: platform.gateway,
      username: bobName,
    });
  });

  afterAll(async () => {
    alice?.close();
    bob?.close();
    await platform?.stop();
    rmSync(profiles, { recursive: true, force: true });
  });

  it('keeps every profile file readable only by its owner', () => {
    expect(statSync(join(profiles, 'alice')).mode & 0o777).toBe(0o700);
    for (const file of walk(join(profiles, 'alice')))
      expect([file, statSync(file).mode & 0o077]).toEqual([file, 0]);
  });

  it('delivers three messages sent while the recipient was offline, in order, decrypted, once', async () => {
    for (const text of secrets) {
      const sent = await alice.send(bobName, text);
      // Alice has no other device: the server confirms that, and the sync copy goes to nobody.
      expect(sent.synced).toBe(true);
      sentGuids.push(...sent.guids);
    }
    // Kafka has them; routing into the mailbox may still be under way, so listen until all three are in.
    const stop = new AbortController();
    const received = await bob.receive({
      waitSeconds: 60,
      signal: stop.signal,
      onMessage: () => {
        if (bob.history().length === secrets.length) stop.abort();
      },
    });
    expect(received.map((message) => [message.from, message.text])).toEqual(
      secrets.map((text) => [aliceName, text]),
    );
    expect(await bob.receive()).toEqual([]);
  });

  /** Starts listening and resolves once the backlog is drained, so what is sent next arrives live. */
  async function listen(client: SottoClient, options: Parameters<SottoClient['receive']>[0] = {}) {
    let drained!: () => void;
    const ready = new Promise<void>((resolve) => (drained = resolve));
    const done = client.receive({ waitSeconds: 60, ...options, onDrained: drained });
    await ready;
    // Wrapped, or awaiting this function would wait for the whole receive.
    return { done };
  }

  it('pushes a reply live to a connected recipient', async () => {
    const stop = new AbortController();
    const listening = await listen(alice, { signal: stop.signal, onMessage: () => stop.abort() });
    await bob.send(aliceName, reply);
    const got = await listening.done;
    expect(got.map((message) => [message.from, message.text])).toEqual([[bobName, reply]]);
  });

  it('shows typing only to a device online now, and never queues it', async () => {
    const typing: TypingIndicator[] = [];
    await alice.sendTyping(bobName);
    expect(await bob.receive({ onTyping: (indicator) => typing.push(indicator) })).toEqual([]);
    expect(typing).toEqual([]);

    const stop = new AbortController();
    const listening = await listen(bob, {
      signal: stop.signal,
      onTyping: (indicator) => {
        typing.push(indicator);
        stop.abort();
      },
    });
    await alice.sendTyping(bobName);
    expect(await listening.done).toEqual([]);
    expect(typing).toEqual([{ from: aliceName }]);
    expect(await bob.receive()).toEqual([]);
  });

  it('keeps the conversation in history on both sides', () => {
    const texts = (client: SottoClient) =>
      client.history().flatMap((entry) => (entry.kind === 'message' ? [[entry.direction, entry.text]] : []));
    expect(texts(alice)).toEqual([...secrets.map((text) => ['out', text]), ['in', reply]]);
    expect(texts(bob)).toEqual([...secrets.map((text) => ['in', text]), ['out', reply]]);
  });

  it('shows the same 60-digit safety number on both sides', async () => {
    const fromAlice = await alice.safetyNumber(bobName);
    expect(fromAlice).toMatch(/^\d{60}$/);
    expect(await bob.safetyNumber(aliceName)).toBe(fromAlice);
  });

  it('surfaces a changed identity key as a safety-number change in history', async () => {
    // Alice's record of Bob's key is replaced, as if Bob's key had changed since she last saw it.
    alice.profile.write(`identities/${bob.accountId}`, IdentityKeyPair.generate().publicKey.serialize());
    const stop = new AbortController();
    const listening = await listen(alice, { signal: stop.signal, onMessage: () => stop.abort() });
    await bob.send(aliceName, 'after the change');
    expect(await listening.done).toMatchObject([{ text: 'after the change', safetyNumberChanged: true }]);
    expect(alice.history(bobName).filter((entry) => entry.kind === 'safety-number-changed')).toEqual([
      { kind: 'safety-number-changed', contact: bobName, at: expect.any(String) as string },
    ]);
  });

  it('sends nothing to the changed key until it is accepted', async () => {
    await expect(alice.send(bobName, 'to the new key?')).rejects.toThrow(
      `the safety number with ${bobName} changed, so nothing was sent`,
    );
    expect(await alice.trust(bobName)).toMatchObject({ changed: true });
    await alice.send(bobName, 'accepted');
    const stop = new AbortController();
    const got = await bob.receive({ waitSeconds: 60, signal: stop.signal, onMessage: () => stop.abort() });
    expect(got.map((message) => [message.from, message.text])).toEqual([[aliceName, 'accepted']]);
  });

  it('leaves no plaintext in Kafka, Redis or PostgreSQL', async () => {
    const stored = await everythingStored({ databaseUrl: platform.databaseUrl });
    // The scan does see what the servers keep: the username in PostgreSQL, envelope GUIDs in Kafka and Redis.
    expect(stored.includes(Buffer.from(aliceName))).toBe(true);
    expect(sentGuids).toHaveLength(3);
    for (const guid of sentGuids) expect(stored.includes(Buffer.from(guid))).toBe(true);
    for (const text of [...secrets, reply]) expect(stored.includes(Buffer.from(text))).toBe(false);
  });
});
