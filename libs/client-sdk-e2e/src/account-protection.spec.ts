import { randomBytes, randomUUID } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { authorizationMetadata, SottoClient, SottoError, unary } from '@sotto/client-sdk';
import { AccountServiceClient } from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { gatewayCredentials, startTestPlatform, type Platform } from '@sotto/testing';

interface AccountJson {
  accountId: string;
  deviceId: number;
  deviceSecret: string;
}

describe('account protection with the SDK: a stolen device secret', () => {
  let platform: Platform;
  const profiles = mkdtempSync(join(tmpdir(), 'sotto-protection-'));
  const opened: SottoClient[] = [];

  const open = (name: string): SottoClient => {
    const client = SottoClient.open({ profileDir: join(profiles, name), server: platform.gateway });
    opened.push(client);
    return client;
  };
  const register = async (name: string): Promise<SottoClient> => {
    const client = await SottoClient.register({
      profileDir: join(profiles, name),
      server: platform.gateway,
      username: name,
    });
    opened.push(client);
    return client;
  };
  /** What a thief who copied a device's account.json (not its recovery key) has. */
  const steal = (from: string): string => {
    const to = `${from}-stolen-${randomUUID().slice(0, 8)}`;
    cpSync(join(profiles, from), join(profiles, to), { recursive: true });
    rmSync(join(profiles, to, 'recovery-key'), { force: true });
    return to;
  };
  const accountOf = (name: string): AccountJson =>
    JSON.parse(readFileSync(join(profiles, name, 'account.json'), 'utf8')) as AccountJson;
  const name = () => `p_${randomUUID().replace(/-/g, '').slice(0, 10)}`;

  beforeAll(async () => {
    platform = await startTestPlatform();
  });

  afterAll(async () => {
    for (const client of opened) client.close();
    await platform?.stop();
    rmSync(profiles, { recursive: true, force: true });
  });

  it("can't replace the recovery credential, and the owner's backups under the same key keep working", async () => {
    const owner = name();
    const client = await register(owner);
    const first = await client.createBackup();
    expect(first.newRecoveryKey).toBe(true);
    // Every later backup presents the credential its recovery key derives, as the current one.
    const second = await client.createBackup();
    expect(second).toMatchObject({ recoveryKey: first.recoveryKey, newRecoveryKey: false });

    const thief = open(steal(owner));
    const refused = await thief.createBackup().catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(SottoError);
    expect(refused).toMatchObject({
      code: status.PERMISSION_DENIED,
      message:
        'this account already has a recovery key, which this device does not hold; back up from a device that holds it',
    });
    // The thief's would-be recovery key was never kept, nor the account's credential changed.
    expect(existsSync(join(thief.profile.dir, 'recovery-key'))).toBe(false);
    expect((await client.createBackup()).version.version).toBe('3');

    // So the recovery key the owner wrote down still takes the account back, and signs the thief out.
    const restored = await SottoClient.restore({
      profileDir: join(profiles, `${owner}-restored`),
      server: platform.gateway,
      username: owner,
      recoveryKey: first.recoveryKey,
    });
    opened.push(restored.client);
    await expect(thief.backupStatus()).rejects.toThrow(/not registered/);
    expect((await restored.client.createBackup()).recoveryKey).toBe(first.recoveryKey);
  });

  it('rotating the secret leaves the thief with a useless copy, and the device working', async () => {
    const owner = name();
    const client = await register(owner);
    const thief = open(steal(owner));
    // Backup status is asked of the server every time: it shows whose credential works.
    expect(await thief.backupStatus()).toMatchObject({ versions: [] });

    const old = accountOf(owner).deviceSecret;
    await client.rotateSecret();
    expect(accountOf(owner).deviceSecret).not.toBe(old);
    expect(await client.backupStatus()).toMatchObject({ versions: [] });
    expect(await open(owner).backupStatus()).toMatchObject({ versions: [] });
    await expect(thief.backupStatus()).rejects.toThrow(/not registered/);
    await expect(thief.rotateSecret()).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
  });

  it('finishes a rotation whose answer was lost: the secret it kept is the one the server took', async () => {
    const owner = name();
    const client = await register(owner);
    const account = accountOf(owner);
    // The request reached the server, but the device crashed before it wrote the answer down.
    const kept = randomBytes(32).toString('base64url');
    writeFileSync(join(profiles, owner, 'pending-device-secret'), kept);
    const accounts = new AccountServiceClient(platform.gateway, gatewayCredentials());
    const auth = authorizationMetadata(account);
    try {
      await unary(accounts.rotateDeviceSecret.bind(accounts), { newDeviceSecret: kept }, { metadata: auth });
    } finally {
      accounts.close();
    }
    await expect(client.backupStatus()).rejects.toThrow(/not registered/);

    await client.rotateSecret();
    expect(accountOf(owner).deviceSecret).toBe(kept);
    expect(existsSync(join(profiles, owner, 'pending-device-secret'))).toBe(false);
    expect(await client.backupStatus()).toMatchObject({ versions: [] });

    // A kept secret the server never took is dropped, and the rotation goes ahead.
    writeFileSync(join(profiles, owner, 'pending-device-secret'), randomBytes(32).toString('base64url'));
    await client.rotateSecret();
    expect(accountOf(owner).deviceSecret).not.toBe(kept);
    expect(existsSync(join(profiles, owner, 'pending-device-secret'))).toBe(false);
    expect(await open(owner).backupStatus()).toMatchObject({ versions: [] });
  });
});
