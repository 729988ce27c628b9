import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import * as opaque from '@serenity-kit/opaque';
import { Client } from 'pg';
import { createTestDatabase, operatorDatabaseUrl, startTestService, type TestService } from '@sotto/testing';
import {
  VaultClient,
  newAccountId,
  newSource,
  openRecoveryKey,
  recoveryProofOf,
  refusal,
  refusalOf,
} from './test-support/vault-client';

const DESTROYED = 'vault destroyed after 10 failed attempts; restore with the recovery key';
/** For tests that spend tries quickly: the spacing has tests of its own (see 'spaced tries'). */
const NO_WAITS = { KEY_VAULT_TRY_DELAYS: '0,0,0,0,0,0,0' };
const GENEROUS = { VAULT_LOGIN_LIMIT_PER_ACCOUNT: '1000', VAULT_LOGIN_LIMIT_PER_SOURCE: '1000', ...NO_WAITS };
// How a vault stands, as GetVaultStatus tells it.
const FRESH = { hasVault: true, attemptsLeft: 10, destroyed: false, failedAttempts: 0, nextTryAfterMs: '0' };
const GONE = { hasVault: false, attemptsLeft: 0, destroyed: true, failedAttempts: 10, nextTryAfterMs: '0' };
const NONE = { hasVault: false, attemptsLeft: 0, destroyed: false, failedAttempts: 0, nextTryAfterMs: '0' };

describe('key-vault', () => {
  let databaseUrl: string;
  let replicas: [TestService, TestService];
  let limited: TestService;
  let quick: TestService;
  let spaced: TestService;
  let short: TestService;
  let vault: VaultClient;
  let other: VaultClient;
  let db: Client;

  beforeAll(async () => {
    databaseUrl = await createTestDatabase();
    // Two replicas of one deployment, started together on an empty database with a key label no
    // token holds yet: they race to create the HSM key and the server setup, and must agree.
    const deployment = {
      ...GENEROUS,
      DATABASE_URL: databaseUrl,
      PKCS11_KEY_LABEL: `kv-${randomBytes(4).toString('hex')}`,
    };
    const [a, b, c, d, e, f] = await Promise.all([
      startTestService('key-vault', deployment),
      startTestService('key-vault', deployment),
      startTestService('key-vault', {
        SOTTO_RATE_LIMITS: 'on',
        VAULT_LOGIN_LIMIT_PER_ACCOUNT: '3',
        VAULT_LOGIN_LIMIT_PER_SOURCE: '5',
        ...NO_WAITS,
      }),
      startTestService('key-vault', { ...GENEROUS, VAULT_LOGIN_TTL_SECONDS: '3' }),
      // Replicas of the same deployment whose tries are spaced: by the default waits (1 h, 4 h, ...),
      // with the rate limits on (the daily reset limit is under test), and by waits short enough to
      // be waited out in a test.
      startTestService('key-vault', {
        ...deployment,
        KEY_VAULT_TRY_DELAYS: undefined,
        SOTTO_RATE_LIMITS: 'on',
      }),
      startTestService('key-vault', { ...deployment, KEY_VAULT_TRY_DELAYS: '4,8,8,8,8,8,8' }),
    ]);
    replicas = [a, b];
    limited = c;
    quick = d;
    spaced = e;
    short = f;
    vault = new VaultClient(a.grpc);
    other = new VaultClient(b.grpc);
    db = new Client({ connectionString: operatorDatabaseUrl(databaseUrl) });
    await db.connect();
  });

  afterAll(async () => {
    vault?.close();
    other?.close();
    await db?.end();
    await Promise.all([...(replicas ?? []), limited, quick, spaced, short].map((service) => service?.stop()));
  });

  const stored = async (accountId: string) =>
    (
      await db.query<{ attempts_used: number; attempts_failed: number }>(
        'SELECT attempts_used, attempts_failed FROM vault.vault_records WHERE account_id = $1',
        [accountId],
      )
    ).rows;
  const tombstones = async (accountId: string) =>
    (await db.query('SELECT 1 FROM vault.vault_tombstones WHERE account_id = $1', [accountId])).rowCount;

  describe('registration and login', () => {
    it('gives back the sealed recovery key to the right password, on either replica', async () => {
      const accountId = newAccountId();
      const registration = await vault.register(accountId, 'correct horse battery staple');
      expect(registration.replaced).toBe(false);
      expect(await vault.status(accountId)).toEqual(FRESH);

      for (const client of [vault, other]) {
        const login = await client.login(accountId, 'correct horse battery staple', newSource());
        expect(Buffer.from(login.sealedRecoveryKey)).toEqual(registration.sealedRecoveryKey);
        expect(openRecoveryKey(login.sealedRecoveryKey, login.exportKey!)).toBe(registration.recoveryKey);
        expect(login.changeToken).toMatch(/^[A-Za-z0-9_-]{22}$/);
      }
      expect(await vault.status(accountId)).toEqual(FRESH);
    });

    it('refuses ten wrong passwords, the last destroying the vault; then the right one fails too', async () => {
      const accountId = newAccountId();
      await vault.register(accountId, 'the right one');
      for (let attempt = 1; attempt <= 10; attempt += 1) {
        const started = await vault.startLogin(accountId, `wrong ${attempt}`, newSource());
        expect(started.attemptsLeft).toBe(10 - attempt);
        const refused = await refusal(vault.finishLogin(started, `wrong ${attempt}`));
        expect(refused).toMatchObject(
          attempt < 10
            ? {
                code: status.UNAUTHENTICATED,
                details: `wrong password; ${10 - attempt} attempts left`,
                metadata: { 'attempts-left': String(10 - attempt) },
              }
            : { code: status.FAILED_PRECONDITION, details: DESTROYED },
        );
      }
      expect(await stored(accountId)).toEqual([]);
      expect(await tombstones(accountId)).toBe(1);
      expect(await refusal(vault.login(accountId, 'the right one', newSource()))).toMatchObject({
        code: status.FAILED_PRECONDITION,
        details: DESTROYED,
      });
      expect(await vault.status(accountId)).toEqual(GONE);

      // The recovery key still opens the backup; the user may protect it with a password again.
      await vault.register(accountId, 'a new start');
      expect(await tombstones(accountId)).toBe(0);
      expect(await vault.status(accountId)).toEqual(FRESH);
    });

    it('starts the count over after a success', async () => {
      const accountId = newAccountId();
      await vault.register(accountId, 'patience');
      const nineWrong = async (): Promise<void> => {
        for (let attempt = 1; attempt <= 9; attempt += 1) {
          await refusal(vault.login(accountId, `nope ${attempt}`, newSource()));
        }
      };
      await nineWrong();
      expect(await vault.status(accountId)).toMatchObject({ attemptsLeft: 1, failedAttempts: 9 });
      await vault.login(accountId, 'patience', newSource());
      expect(await vault.status(accountId)).toMatchObject({ attemptsLeft: 10 });
      expect(await stored(accountId)).toEqual([{ attempts_used: 0, attempts_failed: 0 }]);
      await nineWrong();
      const login = await vault.login(accountId, 'patience', newSource());
      expect(login.exportKey).toBeDefined();
    });

    it('counts a login that is started and never finished', async () => {
      const accountId = newAccountId();
      await vault.register(accountId, 'interrupted');
      const abandoned = await vault.startLogin(accountId, 'interrupted', newSource());
      expect(abandoned.attemptsLeft).toBe(9);
      // Spent, but not known to have failed while it may still be finished.
      expect(await vault.status(accountId)).toMatchObject({ attemptsLeft: 9, failedAttempts: 0 });
      expect(await stored(accountId)).toEqual([{ attempts_used: 1, attempts_failed: 0 }]);

      const next = await other.startLogin(accountId, 'interrupted', newSource());
      expect(next.attemptsLeft).toBe(8);
      await other.finishLogin(next, 'interrupted');
      expect(await vault.status(accountId)).toMatchObject({ attemptsLeft: 10 });
    });

    it('holds the tenth try open while ten logins are in flight, and destroys the vault once they expire', async () => {
      const fast = new VaultClient(quick.grpc);
      try {
        const accountId = newAccountId();
        await fast.register(accountId, 'too slow');
        for (let attempt = 0; attempt < 10; attempt += 1)
          await fast.startLogin(accountId, 'guess', newSource());
        const eleventh = await refusal(fast.startLogin(accountId, 'too slow', newSource()));
        expect(eleventh).toMatchObject({
          code: status.RESOURCE_EXHAUSTED,
          details: expect.stringMatching(/^all 10 attempts are in flight; retry in [0-3] s$/) as string,
        });
        expect(Number(eleventh.metadata['retry-after-ms'])).toBeLessThanOrEqual(3000);

        // The logins expire after VAULT_LOGIN_TTL_SECONDS=3; nothing else happens to the vault meanwhile.
        const deadline = Date.now() + 30_000;
        let state = await fast.status(accountId);
        while (!state.destroyed && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 250));
          state = await fast.status(accountId);
        }
        expect(state).toEqual(GONE);
        expect(await refusal(fast.login(accountId, 'too slow', newSource()))).toMatchObject({
          code: status.FAILED_PRECONDITION,
          details: DESTROYED,
        });
      } finally {
        fast.close();
      }
    });
  });

  describe('guess limit under concurrency', () => {
    it('answers at most ten of fifty concurrent guesses from separate connections to two replicas', async () => {
      const accountId = newAccountId();
      await vault.register(accountId, 'the real one');
      const clients = Array.from(
        { length: 50 },
        (_, index) => new VaultClient(replicas[index % 2].grpc, { ownConnection: true }),
      );
      try {
        const guesses = await Promise.allSettled(
          clients.map((client, index) => client.startLogin(accountId, `guess ${index}`, newSource())),
        );
        const answered = guesses.flatMap((guess, index) =>
          guess.status === 'fulfilled' ? [{ client: clients[index], login: guess.value }] : [],
        );
        const refused = guesses.flatMap((guess) =>
          guess.status === 'rejected' ? [refusalOf(guess.reason)] : [],
        );

        // Every try spent was answered with a credential response, and no more than ten were.
        expect(answered).toHaveLength(10);
        expect(answered.map(({ login }) => login.attemptsLeft).sort((a, b) => a - b)).toEqual([
          0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
        ]);
        expect(answered.every(({ login }) => login.credentialResponse.length === 320)).toBe(true);
        expect(await stored(accountId)).toEqual([{ attempts_used: 10, attempts_failed: 0 }]);
        expect(refused).toHaveLength(40);
        expect(new Set(refused.map((r) => r.code))).toEqual(new Set([status.RESOURCE_EXHAUSTED]));

        // Each guess fails; the last failure destroys the vault, whichever replica counts it.
        const outcomes = await Promise.all(
          answered.map(({ client, login }, index) => refusal(client.finishLogin(login, `guess ${index}`))),
        );
        expect(outcomes.filter((o) => o.code === status.FAILED_PRECONDITION)).toHaveLength(1);
        expect(outcomes.filter((o) => o.code === status.UNAUTHENTICATED)).toHaveLength(9);
        expect(await stored(accountId)).toEqual([]);
        expect(await refusal(other.login(accountId, 'the real one', newSource()))).toMatchObject({
          code: status.FAILED_PRECONDITION,
          details: DESTROYED,
        });
      } finally {
        clients.forEach((client) => client.close());
      }
    });
  });

  describe('changing the password', () => {
    it('needs a change token from a login with the old password, or the recovery key', async () => {
      const accountId = newAccountId();
      const first = await vault.register(accountId, 'old password');

      expect(await refusal(vault.register(accountId, 'new password'))).toMatchObject({
        code: status.PERMISSION_DENIED,
        details:
          'this account has a vault: replacing it needs change_token (from a login with the old password) ' +
          'or current_recovery_proof (from the recovery key)',
      });
      expect(
        await refusal(vault.register(accountId, 'new password', { proof: { changeToken: 'A'.repeat(22) } })),
      ).toMatchObject({
        code: status.PERMISSION_DENIED,
        details: expect.stringMatching(/^change_token: not valid/) as string,
      });
      expect(
        await refusal(
          vault.register(accountId, 'new password', {
            proof: { currentRecoveryProof: recoveryProofOf('guessed') },
          }),
        ),
      ).toMatchObject({
        code: status.PERMISSION_DENIED,
        details: 'current_recovery_proof: does not match this vault',
      });
      // A change token of another account's login proves nothing here.
      const stranger = newAccountId();
      await vault.register(stranger, 'mine');
      const strangers = await vault.login(stranger, 'mine', newSource());
      expect(
        (
          await refusal(
            vault.register(accountId, 'new password', { proof: { changeToken: strangers.changeToken } }),
          )
        ).code,
      ).toBe(status.PERMISSION_DENIED);

      // None of that changed anything: the old password still opens the vault.
      const login = await vault.login(accountId, 'old password', newSource());
      expect(openRecoveryKey(login.sealedRecoveryKey, login.exportKey!)).toBe(first.recoveryKey);

      const changed = await other.register(accountId, 'new password', {
        recoveryKey: first.recoveryKey,
        proof: { changeToken: login.changeToken },
      });
      expect(changed.replaced).toBe(true);
      expect((await refusal(vault.login(accountId, 'old password', newSource()))).code).toBe(
        status.UNAUTHENTICATED,
      );
      const afterChange = await vault.login(accountId, 'new password', newSource());
      expect(openRecoveryKey(afterChange.sealedRecoveryKey, afterChange.exportKey!)).toBe(first.recoveryKey);
      // The count started over with the new password.
      expect(await vault.status(accountId)).toMatchObject({ attemptsLeft: 10 });
      // A change token is spent by the change it made.
      expect(
        (await refusal(vault.register(accountId, 'again', { proof: { changeToken: login.changeToken } })))
          .code,
      ).toBe(status.PERMISSION_DENIED);

      const recovered = await vault.register(accountId, 'third password', {
        recoveryKey: first.recoveryKey,
        proof: { currentRecoveryProof: recoveryProofOf(first.recoveryKey) },
      });
      expect(recovered.replaced).toBe(true);
      const third = await other.login(accountId, 'third password', newSource());
      expect(openRecoveryKey(third.sealedRecoveryKey, third.exportKey!)).toBe(first.recoveryKey);
    });
  });

  describe('rate limits', () => {
    let client: VaultClient;

    beforeAll(() => {
      client = new VaultClient(limited.grpc);
    });

    afterAll(() => client?.close());

    it('throttles logins per account, from any source, without spending tries', async () => {
      const accountId = newAccountId();
      await client.register(accountId, 'limited');
      for (let attempt = 0; attempt < 3; attempt += 1)
        await client.startLogin(accountId, 'limited', newSource());
      const throttled = await refusal(client.startLogin(accountId, 'limited', newSource()));
      expect(throttled).toMatchObject({
        code: status.RESOURCE_EXHAUSTED,
        details: expect.stringMatching(/^too many vault logins for this account; retry in \d+ s$/) as string,
      });
      const retryAfterMs = Number(throttled.metadata['retry-after-ms']);
      expect(retryAfterMs).toBeGreaterThan(0);
      expect(retryAfterMs).toBeLessThanOrEqual(3_600_000);
      expect(await client.status(accountId)).toMatchObject({ attemptsLeft: 7 });

      const neighbour = newAccountId();
      await client.register(neighbour, 'unaffected');
      await expect(client.login(neighbour, 'unaffected', newSource())).resolves.toHaveProperty('exportKey');
    });

    it('throttles logins per source address, for any account, counting an IPv6 /64 as one source', async () => {
      const prefix = `2001:db8:${randomBytes(2).toString('hex')}:${randomBytes(2).toString('hex')}`;
      for (let attempt = 1; attempt <= 5; attempt += 1) {
        // Accounts without a vault: the answer is NOT_FOUND, but the attempt still counts at the source.
        expect((await refusal(client.startLogin(newAccountId(), 'x', `${prefix}::${attempt}`))).code).toBe(
          status.NOT_FOUND,
        );
      }
      expect(await refusal(client.startLogin(newAccountId(), 'x', `${prefix}:ffff::1`))).toMatchObject({
        code: status.RESOURCE_EXHAUSTED,
        details: expect.stringMatching(/^too many vault logins from this address; retry in \d+ s$/) as string,
      });
      const elsewhere = `2001:db8:${randomBytes(2).toString('hex')}:1::1`;
      expect((await refusal(client.startLogin(newAccountId(), 'x', elsewhere))).code).toBe(status.NOT_FOUND);
    });
  });

  describe('spaced tries', () => {
    let patient: VaultClient;
    let hasty: VaultClient;

    beforeAll(() => {
      patient = new VaultClient(spaced.grpc);
      hasty = new VaultClient(short.grpc);
    });

    afterAll(() => {
      patient?.close();
      hasty?.close();
    });

    /** Waits, by asking the vault, until its next try is allowed; the short waits pass in seconds. */
    const untilTryAllowed = async (client: VaultClient, accountId: string): Promise<void> => {
      const deadline = Date.now() + 30_000;
      while ((await client.status(accountId)).nextTryAfterMs !== '0') {
        if (Date.now() > deadline) throw new Error('the wait did not end');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    const wrongTry = (client: VaultClient, accountId: string, guess: string) =>
      refusal(client.login(accountId, guess, newSource()));

    it('answers three tries at once, then refuses the fourth with the wait, spending nothing', async () => {
      const accountId = newAccountId();
      await patient.register(accountId, 'the owner knows');
      const three = await Promise.all([1, 2, 3].map((n) => wrongTry(patient, accountId, `guess ${n}`)));
      expect(three.map((r) => r.code)).toEqual([
        status.UNAUTHENTICATED,
        status.UNAUTHENTICATED,
        status.UNAUTHENTICATED,
      ]);
      // Each failure names the account (for the gateway) and, once the next try must wait, says how long.
      expect(new Set(three.map((r) => r.metadata['account-id']))).toEqual(new Set([accountId]));
      const third = three.find((r) => r.metadata['attempts-left'] === '7');
      expect(third?.details).toBe('wrong password; 7 attempts left; the next try is allowed in 1 h');
      expect(Number(third?.metadata['next-try-after-ms'])).toBeGreaterThan(3_500_000);
      expect(Number(third?.metadata['next-try-after-ms'])).toBeLessThanOrEqual(3_600_000);

      // The fourth, fifth, ... are refused, whoever sends them and whatever the password.
      for (const password of ['guess 4', 'the owner knows', 'guess 5']) {
        const refused = await refusal(patient.startLogin(accountId, password, newSource()));
        expect(refused).toMatchObject({
          code: status.RESOURCE_EXHAUSTED,
          details: expect.stringMatching(
            /^password tries are spaced out: the next is allowed in (60 min|1 h) \(7 attempts left\); retry in 3[56]\d\d s$/,
          ) as string,
          metadata: { 'attempts-left': '7' },
        });
        const retryAfterMs = Number(refused.metadata['retry-after-ms']);
        expect(retryAfterMs).toBeGreaterThan(3_500_000);
        expect(retryAfterMs).toBeLessThanOrEqual(3_600_000);
      }
      expect(await stored(accountId)).toEqual([{ attempts_used: 3, attempts_failed: 3 }]);
      const state = await patient.status(accountId);
      expect(state).toMatchObject({ hasVault: true, attemptsLeft: 7, failedAttempts: 3 });
      expect(Number(state.nextTryAfterMs)).toBeGreaterThan(3_500_000);
    });

    it('answers at most three of twenty concurrent guesses when the fourth must wait', async () => {
      const accountId = newAccountId();
      await patient.register(accountId, 'unguessed');
      const clients = Array.from({ length: 20 }, () => new VaultClient(spaced.grpc, { ownConnection: true }));
      try {
        const guesses = await Promise.allSettled(
          clients.map((client, index) => client.startLogin(accountId, `guess ${index}`, newSource())),
        );
        const answered = guesses.filter((guess) => guess.status === 'fulfilled');
        const refused = guesses.flatMap((guess) =>
          guess.status === 'rejected' ? [refusalOf(guess.reason)] : [],
        );
        expect(answered).toHaveLength(3);
        expect(refused.map((r) => r.code)).toEqual(new Array<status>(17).fill(status.RESOURCE_EXHAUSTED));
        expect(await stored(accountId)).toEqual([{ attempts_used: 3, attempts_failed: 0 }]);
      } finally {
        clients.forEach((client) => client.close());
      }
    });

    it('counts the next try once its wait is over, and a right password then still opens the vault', async () => {
      const accountId = newAccountId();
      const { recoveryKey } = await hasty.register(accountId, 'worth the wait');
      for (let n = 1; n <= 3; n += 1) await wrongTry(hasty, accountId, `guess ${n}`);
      const early = await refusal(hasty.startLogin(accountId, 'worth the wait', newSource()));
      expect(early.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(Number(early.metadata['retry-after-ms'])).toBeLessThanOrEqual(4000);
      expect(await stored(accountId)).toEqual([{ attempts_used: 3, attempts_failed: 3 }]);

      // Waited out (4 s for the fourth try), a wrong fourth try is answered; the fifth waits 8 s after it.
      // (Seconds, not less: each try is a whole OPAQUE login, which a loaded machine may take most of a
      // second over, and the refusals below must come while the wait still runs.)
      await untilTryAllowed(hasty, accountId);
      // The wait is counted from when the failure was stored, so a slow answer names less than 8 s.
      expect(await wrongTry(hasty, accountId, 'guess 4')).toMatchObject({
        code: status.UNAUTHENTICATED,
        details: expect.stringMatching(
          /^wrong password; 6 attempts left; the next try is allowed in [5-8] s$/,
        ) as string,
      });
      const fifth = await refusal(hasty.startLogin(accountId, 'worth the wait', newSource()));
      expect(fifth).toMatchObject({ code: status.RESOURCE_EXHAUSTED, metadata: { 'attempts-left': '6' } });
      expect(Number(fifth.metadata['retry-after-ms'])).toBeGreaterThan(4000);
      expect(Number(fifth.metadata['retry-after-ms'])).toBeLessThanOrEqual(8000);

      await untilTryAllowed(hasty, accountId);
      const login = await hasty.login(accountId, 'worth the wait', newSource());
      expect(openRecoveryKey(login.sealedRecoveryKey, login.exportKey!)).toBe(recoveryKey);
      // The success starts the count over: three tries at once again.
      expect(await hasty.status(accountId)).toEqual(FRESH);
      for (let n = 1; n <= 3; n += 1) await wrongTry(hasty, accountId, `again ${n}`);
      expect(await stored(accountId)).toEqual([{ attempts_used: 3, attempts_failed: 3 }]);
    });

    it("lets the account's own device clear the count, once a day, and a reset with nothing to clear is free", async () => {
      const accountId = newAccountId();
      await patient.register(accountId, 'reset me');
      expect(await patient.resetAttempts(accountId)).toEqual(FRESH);

      for (let n = 1; n <= 2; n += 1) await wrongTry(patient, accountId, `guess ${n}`);
      const inFlight = await patient.startLogin(accountId, 'wrong', newSource());
      expect((await refusal(patient.startLogin(accountId, 'reset me', newSource()))).code).toBe(
        status.RESOURCE_EXHAUSTED,
      );
      expect(await patient.resetAttempts(accountId)).toEqual(FRESH);
      // A login started before the reset can no longer fail against the new count.
      expect(await refusal(patient.finishLogin(inFlight, 'wrong'))).toMatchObject({
        code: status.UNAUTHENTICATED,
        details: 'wrong password; 10 attempts left',
      });
      expect(await stored(accountId)).toEqual([{ attempts_used: 0, attempts_failed: 0 }]);
      await expect(patient.login(accountId, 'reset me', newSource())).resolves.toHaveProperty('exportKey');

      // A second reset the same day is refused, changing nothing.
      await wrongTry(patient, accountId, 'one more');
      const again = await refusal(patient.resetAttempts(accountId));
      expect(again).toMatchObject({
        code: status.RESOURCE_EXHAUSTED,
        details: expect.stringMatching(
          /^the count of tries was reset 1 time\(s\) today already; retry in \d+ s$/,
        ) as string,
      });
      expect(Number(again.metadata['retry-after-ms'])).toBeGreaterThan(23 * 3600 * 1000);
      expect(await patient.status(accountId)).toMatchObject({ attemptsLeft: 9, failedAttempts: 1 });
    });

    it('refuses a reset without a vault, and after a destroyed vault clears only the record that it was', async () => {
      expect(await refusal(patient.resetAttempts(newAccountId()))).toMatchObject({
        code: status.NOT_FOUND,
        details: 'account_id: has no vault',
      });
      const accountId = newAccountId();
      await vault.register(accountId, 'doomed');
      for (let n = 1; n <= 10; n += 1) await wrongTry(vault, accountId, `guess ${n}`);
      expect(await vault.status(accountId)).toEqual(GONE);
      expect(await patient.resetAttempts(accountId)).toEqual(NONE);
      expect(await tombstones(accountId)).toBe(0);
      expect(await refusal(vault.login(accountId, 'doomed', newSource()))).toMatchObject({
        code: status.NOT_FOUND,
      });
    });
  });

  describe('bad input', () => {
    const KE1 = Buffer.alloc(96, 0xff);

    it.each([
      [
        'StartLogin',
        'account_id: is required',
        { accountId: '', credentialRequest: KE1, source: '192.0.2.1' },
      ],
      [
        'StartLogin',
        'account_id: is not an account id',
        { accountId: 'alice', credentialRequest: KE1, source: '192.0.2.1' },
      ],
      [
        'StartLogin',
        'credential_request: is required',
        { credentialRequest: Buffer.alloc(0), source: '192.0.2.1' },
      ],
      [
        'StartLogin',
        'credential_request: must be 96 bytes, not 95',
        { credentialRequest: Buffer.alloc(95), source: '192.0.2.1' },
      ],
      ['StartLogin', 'source: is required', { credentialRequest: KE1, source: '' }],
      ['StartLogin', 'source: is not an IP address', { credentialRequest: KE1, source: 'gateway-7' }],
      ['FinishLogin', 'login_id: is required', { loginId: '', credentialFinalization: Buffer.alloc(64) }],
      [
        'FinishLogin',
        'login_id: is not a login id',
        { loginId: 'x', credentialFinalization: Buffer.alloc(64) },
      ],
      [
        'FinishLogin',
        'credential_finalization: must be 64 bytes, not 65',
        { loginId: 'A'.repeat(22), credentialFinalization: Buffer.alloc(65) },
      ],
      [
        'StartRegistration',
        'registration_request: must be 32 bytes, not 31',
        { registrationRequest: Buffer.alloc(31) },
      ],
      ['GetVaultStatus', 'account_id: is not an account id', { accountId: '12345' }],
      ['DeleteVault', 'account_id: is required', { accountId: '' }],
      ['ResetAttempts', 'account_id: is not an account id', { accountId: 'bob' }],
    ])('%s refuses %p with INVALID_ARGUMENT', async (method, details, fields) => {
      const request = { accountId: newAccountId(), ...fields };
      const rpcs: Record<string, (request: never) => Promise<unknown>> = {
        StartLogin: vault.rpc.startLogin,
        FinishLogin: vault.rpc.finishLogin,
        StartRegistration: vault.rpc.startRegistration,
        GetVaultStatus: vault.rpc.getVaultStatus,
        DeleteVault: vault.rpc.deleteVault,
        ResetAttempts: vault.rpc.resetAttempts,
      };
      expect(await refusal(rpcs[method](request as never))).toMatchObject({
        code: status.INVALID_ARGUMENT,
        details,
      });
    });

    it('refuses a garbage credential request without spending a try', async () => {
      const accountId = newAccountId();
      await vault.register(accountId, 'unchanged');
      expect(
        await refusal(vault.rpc.startLogin({ accountId, credentialRequest: KE1, source: newSource() })),
      ).toMatchObject({
        code: status.INVALID_ARGUMENT,
        details: 'credential_request: is not an OPAQUE credential request',
      });
      expect(await stored(accountId)).toEqual([{ attempts_used: 0, attempts_failed: 0 }]);
    });

    it('refuses bad registrations, storing nothing', async () => {
      const accountId = newAccountId();
      expect(
        await refusal(
          vault.rpc.startRegistration({ accountId, registrationRequest: Buffer.alloc(32, 0xff) }),
        ),
      ).toMatchObject({
        code: status.INVALID_ARGUMENT,
        details: 'registration_request: is not an OPAQUE registration request',
      });

      const finish = (fields: Record<string, unknown>) =>
        refusal(
          vault.rpc.finishRegistration({
            accountId,
            registrationId: 'A'.repeat(22),
            registrationRecord: Buffer.alloc(192, 1),
            sealedRecoveryKey: Buffer.alloc(100),
            recoveryProof: Buffer.alloc(32),
            changeToken: '',
            currentRecoveryProof: Buffer.alloc(0),
            ...fields,
          }),
        );
      expect(await finish({ sealedRecoveryKey: Buffer.alloc(1025) })).toMatchObject({
        code: status.RESOURCE_EXHAUSTED,
        details: 'sealed_recovery_key: at most 1024 bytes, not 1025',
      });
      expect(await finish({ sealedRecoveryKey: Buffer.alloc(0) })).toMatchObject({
        code: status.INVALID_ARGUMENT,
        details: 'sealed_recovery_key: is required',
      });
      expect(await finish({ recoveryProof: Buffer.alloc(16) })).toMatchObject({
        code: status.INVALID_ARGUMENT,
        details: 'recovery_proof: must be 32 bytes, not 16',
      });
      expect(
        await finish({ changeToken: 'B'.repeat(22), currentRecoveryProof: Buffer.alloc(32) }),
      ).toMatchObject({
        code: status.INVALID_ARGUMENT,
        details: 'change_token, current_recovery_proof: give one, not both',
      });
      expect(await finish({})).toMatchObject({
        code: status.NOT_FOUND,
        details: 'registration_id: no such registration in progress (expired or finished)',
      });

      // A real registration id, with a record that is not one.
      await opaque.ready;
      const { registrationRequest } = opaque.client.startRegistration({ password: 'p' });
      const { registrationId } = await vault.rpc.startRegistration({
        accountId,
        registrationRequest: Buffer.from(registrationRequest, 'base64url'),
      });
      expect(await finish({ registrationId })).toMatchObject({
        code: status.INVALID_ARGUMENT,
        details: 'registration_record: is not an OPAQUE registration record',
      });
      // Another account's registration id is no registration of this one.
      expect((await finish({ registrationId, accountId: newAccountId() })).code).toBe(status.NOT_FOUND);
      expect(await stored(accountId)).toEqual([]);
      expect(await vault.status(accountId)).toEqual(NONE);
    });

    it('refuses unknown, malformed and replayed login ids, changing nothing', async () => {
      const accountId = newAccountId();
      await vault.register(accountId, 'once');
      const unknown = await refusal(
        vault.rpc.finishLogin({ loginId: 'C'.repeat(22), credentialFinalization: Buffer.alloc(64) }),
      );
      expect(unknown).toMatchObject({
        code: status.NOT_FOUND,
        details: 'login_id: no such login in progress (expired or already finished)',
      });

      const started = await vault.startLogin(accountId, 'once', newSource());
      // A malformed finalization leaves the login to be finished properly.
      expect(
        (
          await refusal(
            vault.rpc.finishLogin({ loginId: started.loginId, credentialFinalization: Buffer.alloc(63) }),
          )
        ).code,
      ).toBe(status.INVALID_ARGUMENT);
      await vault.finishLogin(started, 'once');
      expect(await refusal(vault.finishLogin(started, 'once'))).toMatchObject({
        code: status.NOT_FOUND,
        details: 'login_id: no such login in progress (expired or already finished)',
      });
      expect(await stored(accountId)).toEqual([{ attempts_used: 0, attempts_failed: 0 }]);
    });

    it('tells an account without a vault so, and deletes a vault on request', async () => {
      const accountId = newAccountId();
      expect(await refusal(vault.login(accountId, 'none', newSource()))).toMatchObject({
        code: status.NOT_FOUND,
        details: 'account_id: has no vault',
      });
      await vault.register(accountId, 'short-lived');
      expect(await vault.rpc.deleteVault({ accountId })).toEqual({ deleted: true });
      expect(await vault.rpc.deleteVault({ accountId })).toEqual({ deleted: false });
      expect((await refusal(vault.login(accountId, 'short-lived', newSource()))).code).toBe(status.NOT_FOUND);
    });
  });
});
