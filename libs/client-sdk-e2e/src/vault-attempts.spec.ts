import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import * as opaque from '@serenity-kit/opaque';
import { VaultServiceClient } from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { SottoClient, SottoError, unary, type VaultAttemptReport } from '@sotto/client-sdk';
import { gatewayCredentials, startTestPlatform } from '@sotto/testing';

/** Listens on the owner's device until stopped, collecting the vault reports it is told. */
function listen(client: SottoClient) {
  const reports: VaultAttemptReport[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  const stop = new AbortController();
  let drained!: () => void;
  const connected = new Promise<void>((resolve) => (drained = resolve));
  const done = client.receive({
    waitSeconds: 600,
    signal: stop.signal,
    onDrained: () => drained(),
    onVaultAttemptFailed: (report) => {
      reports.push(report);
      for (const waiter of waiters.filter((w) => reports.length >= w.count)) waiter.resolve();
    },
  });
  return {
    reports,
    /** Resolves once the backlog is delivered: the device is online from then on. */
    connected,
    /** Resolves once `count` reports arrived. */
    reportsArrived: (count: number) =>
      new Promise<void>((resolve) => {
        if (reports.length >= count) resolve();
        else waiters.push({ count, resolve });
      }),
    stop: async () => {
      stop.abort();
      await done;
    },
  };
}

describe("a stranger who knows a username can't burn the vault", () => {
  let platform: Awaited<ReturnType<typeof startTestPlatform>>;
  const profiles = mkdtempSync(join(tmpdir(), 'sotto-vault-attempts-'));
  const tag = randomUUID().replace(/-/g, '').slice(0, 8);
  const ownerName = `owner_${tag}`;
  const password = `the owner's password ${randomUUID()}`;
  let owner: SottoClient;
  let vault: VaultServiceClient;

  beforeAll(async () => {
    // The default waits between tries (1 h, 4 h, ...), and the vault's rate limits on (the daily
    // reset limit is under test); every vault login here comes from 127.0.0.1, whose per-source
    // allowance other suites of this run share.
    platform = await startTestPlatform({
      'key-vault': { SOTTO_RATE_LIMITS: 'on', VAULT_LOGIN_LIMIT_PER_SOURCE: '1000' },
    });
    owner = await SottoClient.register({
      profileDir: join(profiles, 'owner'),
      server: platform.gateway,
      username: ownerName,
    });
    await owner.createBackup({ password });
    vault = new VaultServiceClient(platform.gateway, gatewayCredentials());
  });

  afterAll(async () => {
    owner?.close();
    vault?.close();
    await platform?.stop();
    rmSync(profiles, { recursive: true, force: true });
  });

  /** The stranger: a fresh device that knows only the username, restoring with a guessed password. */
  const guess = (attempt: string) => {
    const profileDir = join(profiles, `stranger-${randomUUID()}`);
    return SottoClient.restore({
      profileDir,
      server: platform.gateway,
      username: ownerName,
      password: attempt,
    }).then(
      (restored) => {
        restored.client.close();
        throw new Error('a guessed password restored the account');
      },
      (error: unknown) => {
        expect(existsSync(join(profileDir, 'account.json'))).toBe(false);
        return error as SottoError;
      },
    );
  };

  it('answers three wrong tries at once, refuses the fourth with a wait, and reports each to the owner', async () => {
    const online = listen(owner);
    await online.connected;
    try {
      const three = await Promise.all(['guess 1', 'guess 2', 'guess 3'].map(guess));
      expect(three.map((error) => error.code)).toEqual([
        status.UNAUTHENTICATED,
        status.UNAUTHENTICATED,
        status.UNAUTHENTICATED,
      ]);
      // Concurrent tries may all be counted before any fails: how many are left depends on the order.
      for (const error of three) {
        expect(error.message).toMatch(
          /^wrong password; [789] attempts left(; the next try is allowed in 1 h)?$/,
        );
      }
      expect(three.map((error) => error.message)).toContain(
        'wrong password; 7 attempts left; the next try is allowed in 1 h',
      );

      const fourth = await guess('guess 4');
      expect(fourth.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(fourth.message).toMatch(
        /^password tries are spaced out: the next is allowed in (60 min|1 h) \(7 attempts left\); try again in 3[56]\d\d s$/,
      );

      // Each wrong password was reported live to the owner's connected device.
      await online.reportsArrived(3);
      expect(online.reports).toHaveLength(3);
      expect(online.reports.every((report) => !report.destroyed)).toBe(true);
      const latest = online.reports.reduce((a, b) => (b.failedAttempts > a.failedAttempts ? b : a));
      expect(latest).toMatchObject({ attemptsLeft: 7, failedAttempts: 3, destroyed: false });
      expect(latest.nextTryAfterMs).toBeGreaterThan(3_500_000);
      expect(latest.nextTryAfterMs).toBeLessThanOrEqual(3_600_000);
    } finally {
      await online.stop();
    }

    // Refusals for waiting spend nothing, even with the right password.
    for (const attempt of ['guess 5', password]) {
      expect((await guess(attempt)).code).toBe(status.RESOURCE_EXHAUSTED);
    }
    expect((await owner.backupStatus()).vault).toMatchObject({
      hasVault: true,
      attemptsLeft: 7,
      failedAttempts: 3,
      destroyed: false,
    });
  });

  it('tells the device again when it connects, for as long as the failed tries are counted', async () => {
    for (let round = 0; round < 2; round += 1) {
      const reports: VaultAttemptReport[] = [];
      await owner.receive({ onVaultAttemptFailed: (report) => reports.push(report) });
      expect(reports).toEqual([
        {
          attemptsLeft: 7,
          failedAttempts: 3,
          nextTryAfterMs: expect.any(Number) as number,
          destroyed: false,
        },
      ]);
      expect(reports[0]?.nextTryAfterMs).toBeGreaterThan(3_000_000);
    }
  });

  it('never hands the account id the vault names for the gateway to the stranger', async () => {
    await opaque.ready;
    const start = opaque.client.startLogin({ password: 'a guess' });
    const refusedStart = await unary(vault.startVaultLogin.bind(vault), {
      username: ownerName,
      credentialRequest: Buffer.from(start.startLoginRequest, 'base64url'),
    }).catch((error: unknown) => error as ServiceError);
    // The owner's vault is waiting: the try is refused, and says only how long and how many are left.
    expect(refusedStart).toMatchObject({ code: status.RESOURCE_EXHAUSTED });
    const startMetadata = (refusedStart as ServiceError).metadata.getMap();
    expect(startMetadata).toMatchObject({ 'attempts-left': '7' });
    expect(startMetadata).not.toHaveProperty('account-id');

    // A vault that answers: the wrong password's refusal carries the tries left, not the account.
    const other = await SottoClient.register({
      profileDir: join(profiles, `other-${tag}`),
      server: platform.gateway,
      username: `other_${tag}`,
    });
    try {
      await other.createBackup({ password: 'other password' });
      const started = await unary(vault.startVaultLogin.bind(vault), {
        username: `other_${tag}`,
        credentialRequest: Buffer.from(start.startLoginRequest, 'base64url'),
      });
      const refused = await unary(vault.finishVaultLogin.bind(vault), {
        loginId: started.loginId,
        credentialFinalization: randomBytes(64),
      }).catch((error: unknown) => error as ServiceError);
      expect(refused).toMatchObject({
        code: status.UNAUTHENTICATED,
        details: 'wrong password; 9 attempts left',
      });
      const finishMetadata = (refused as ServiceError).metadata.getMap();
      expect(finishMetadata).toMatchObject({ 'attempts-left': '9' });
      expect(finishMetadata).not.toHaveProperty('account-id');
    } finally {
      other.close();
    }
  });

  it("lets the owner's device clear the count: 10 tries again, no more reports, and the password works at once", async () => {
    expect(await owner.resetVaultAttempts()).toEqual({
      hasVault: true,
      attemptsLeft: 10,
      destroyed: false,
      failedAttempts: 0,
      nextTryAfterMs: '0',
    });
    const reports: VaultAttemptReport[] = [];
    await owner.receive({ onVaultAttemptFailed: (report) => reports.push(report) });
    expect(reports).toEqual([]);

    // Once a day: a second reset with something to clear is refused, in words.
    expect((await guess('guess 6')).message).toBe('wrong password; 9 attempts left');
    await expect(owner.resetVaultAttempts()).rejects.toMatchObject({
      code: status.RESOURCE_EXHAUSTED,
      message: expect.stringMatching(
        /^the count of tries was reset 1 time\(s\) today already; try again in \d+ s$/,
      ) as string,
    });

    // The right password still opens the vault (9 tries left, none waiting), on a new device.
    const restored = await SottoClient.restore({
      profileDir: join(profiles, 'owner-new-phone'),
      server: platform.gateway,
      username: ownerName,
      password,
    });
    restored.client.close();
    expect(restored.version.version).toBe('1');
  });
});
