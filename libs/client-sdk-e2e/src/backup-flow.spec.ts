import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SottoClient, UntrustedIdentityError } from '@sotto/client-sdk';
import { everythingStored, walk, startTestPlatform } from '@sotto/testing';

/** Listens until `count` messages arrived (routing is asynchronous), then stops. */
async function receiveCount(client: SottoClient, count: number) {
  const stop = new AbortController();
  let seen = 0;
  return client.receive({
    waitSeconds: 120,
    signal: stop.signal,
    onMessage: () => {
      if (++seen >= count) stop.abort();
    },
  });
}

const texts = (client: SottoClient) =>
  client.history().flatMap((entry) => (entry.kind === 'message' ? [`${entry.direction}:${entry.text}`] : []));

describe('backups end to end: back up, lose the phone, restore, chat on', () => {
  let platform: Awaited<ReturnType<typeof startTestPlatform>>;
  const profiles = mkdtempSync(join(tmpdir(), 'sotto-backup-profiles-'));
  const tag = randomUUID().replace(/-/g, '').slice(0, 8);
  const aliceName = `alice_${tag}`;
  const bobName = `bob_${tag}`;
  const password = `correct horse ${randomUUID()}`;
  const said = [`first-${randomUUID()}`, `second-${randomUUID()}`];
  const replied = `reply-${randomUUID()}`;
  const afterRestore = `after-restore-${randomUUID()}`;
  let alice: SottoClient;
  let bob: SottoClient;
  let recoveryKey = '';

  beforeAll(async () => {
    // Room for the ten wrong guesses below: the default allows five logins an hour per account, and
    // spaces tries out after the third (its own suite, vault-attempts, shows that). Every login comes
    // from 127.0.0.1, whose per-source allowance other suites of this run share.
    platform = await startTestPlatform({
      'key-vault': {
        VAULT_LOGIN_LIMIT_PER_ACCOUNT: '50',
        VAULT_LOGIN_LIMIT_PER_SOURCE: '1000',
        KEY_VAULT_TRY_DELAYS: '0,0,0,0,0,0,0',
      },
    });
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
    for (const text of said) await alice.send(bobName, text);
    await receiveCount(bob, said.length);
    await bob.send(aliceName, replied);
    await receiveCount(alice, 1);
  });

  afterAll(async () => {
    alice?.close();
    bob?.close();
    await platform?.stop();
    rmSync(profiles, { recursive: true, force: true });
  });

  it('backs up with a password and says so in the status', async () => {
    const made = await alice.createBackup({ password });
    recoveryKey = made.recoveryKey;
    expect(recoveryKey).toMatch(/^[a-z0-9]{64}$/);
    expect(made).toMatchObject({ newRecoveryKey: true, passwordProtected: true, version: { version: '1' } });
    const status = await alice.backupStatus();
    expect(status.versions.map((version) => version.version)).toEqual(['1']);
    expect(status.vault).toEqual({
      hasVault: true,
      attemptsLeft: 10,
      destroyed: false,
      failedAttempts: 0,
      nextTryAfterMs: '0',
    });
  });

  it('restores on a fresh profile with the password; the old phone is signed out; the chat goes on', async () => {
    const restored = await SottoClient.restore({
      profileDir: join(profiles, 'alice-new-phone'),
      server: platform.gateway,
      username: aliceName,
      password,
    });
    const phone = restored.client;
    try {
      expect(texts(phone)).toEqual([...said.map((text) => `out:${text}`), `in:${replied}`]);
      expect(restored.historyEntries).toBe(3);
      await expect(alice.send(bobName, 'from the lost phone')).rejects.toThrow(/not registered/);

      // Bob's next message finds Alice's new device (a new device id and identity key). The new
      // safety number holds it back until Bob accepts it; then it reaches the new device.
      await expect(bob.send(aliceName, afterRestore)).rejects.toThrow(UntrustedIdentityError);
      expect(await bob.trust(aliceName)).toMatchObject({ changed: true });
      await bob.send(aliceName, afterRestore);
      const got = await receiveCount(phone, 1);
      expect(got.map((message) => message.text)).toEqual([afterRestore]);
      await phone.send(bobName, 'back online');
      expect((await receiveCount(bob, 1)).map((message) => message.text)).toEqual(['back online']);
      expect(bob.history(aliceName).filter((entry) => entry.kind === 'safety-number-changed')).toHaveLength(
        1,
      );

      // The new phone backs up under the same recovery key: what the user wrote down keeps working.
      const again = await phone.createBackup();
      expect(again).toMatchObject({ recoveryKey, newRecoveryKey: false });
      expect(again.version.version).toBe('2');
    } finally {
      phone.close();
    }
  });

  it('after ten wrong passwords the vault is gone, and the recovery key still restores', async () => {
    const attempt = (guess: string) =>
      SottoClient.restore({
        profileDir: join(profiles, `guess-${randomUUID()}`),
        server: platform.gateway,
        username: aliceName,
        password: guess,
      });
    const answers: unknown[] = [];
    for (let i = 0; i < 10; i++)
      answers.push(
        await attempt(`wrong ${i}`).then(
          () => 'restored',
          (error: unknown) => error,
        ),
      );
    expect(answers.every((answer) => answer !== 'restored')).toBe(true);
    await expect(attempt(password)).rejects.toThrow(/destroyed/);

    const profileDir = join(profiles, 'alice-third-phone');
    const restored = await SottoClient.restore({
      profileDir,
      server: platform.gateway,
      username: aliceName,
      recoveryKey,
    });
    try {
      expect(texts(restored.client)).toEqual([
        ...said.map((text) => `out:${text}`),
        `in:${replied}`,
        `in:${afterRestore}`,
        'out:back online',
      ]);
    } finally {
      restored.client.close();
    }
  });

  it('a wrong recovery key changes nothing and leaves no profile behind', async () => {
    const profileDir = join(profiles, `wrong-key-${randomUUID()}`);
    await expect(
      SottoClient.restore({
        profileDir,
        server: platform.gateway,
        username: aliceName,
        recoveryKey: 'a'.repeat(64),
      }),
    ).rejects.toThrow(/wrong username or recovery credential|recovery key/);
    expect(existsSync(join(profileDir, 'account.json'))).toBe(false);
  });

  it('leaves no message, password or recovery key in Kafka, Redis, PostgreSQL or the blob directory', async () => {
    const stored = await everythingStored({
      databaseUrl: platform.databaseUrl,
      blobDir: platform.backupBlobDir,
    });
    expect(stored.includes(Buffer.from(aliceName))).toBe(true);
    for (const secret of [...said, replied, afterRestore, password, recoveryKey]) {
      expect([secret, stored.includes(Buffer.from(secret))]).toEqual([secret, false]);
    }
  });

  it('refuses a backup damaged in storage, restoring nothing from it', async () => {
    // One flipped bit in the middle of every stored blob.
    for (const file of walk(platform.backupBlobDir)) {
      const bytes = readFileSync(file);
      const middle = Math.floor(bytes.length / 2);
      bytes[middle] = (bytes[middle] ?? 0) ^ 0x10;
      writeFileSync(file, bytes);
    }
    const profileDir = join(profiles, 'alice-fourth-phone');
    await expect(
      SottoClient.restore({ profileDir, server: platform.gateway, username: aliceName, recoveryKey }),
    ).rejects.toThrow(/backup could not be restored: backup version 2 arrived damaged/);
    const phone = SottoClient.open({ profileDir, server: platform.gateway });
    try {
      expect(phone.history()).toEqual([]);
    } finally {
      phone.close();
    }
  });
});
