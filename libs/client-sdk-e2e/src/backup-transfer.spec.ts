import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, status } from '@grpc/grpc-js';
import {
  AccountServiceClient,
  BackupServiceClient,
  VaultServiceClient,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import {
  authorizationMetadata,
  downloadBackupFile,
  generateDeviceKeys,
  publicDeviceKeys,
  unary,
  uploadBackupFile,
} from '@sotto/client-sdk';
import { gatewayCredentials, startTcpProxy, startTestPlatform, type TcpProxy } from '@sotto/testing';

const sha256 = (data: Uint8Array): Buffer => createHash('sha256').update(data).digest();

describe('backup transfers through the gateway', () => {
  let platform: Awaited<ReturnType<typeof startTestPlatform>>;
  let proxy: TcpProxy;
  const dir = mkdtempSync(join(tmpdir(), 'sotto-transfer-'));
  const clients: { close(): void }[] = [];

  beforeAll(async () => {
    platform = await startTestPlatform();
    proxy = await startTcpProxy(platform.gateway);
  });

  afterAll(async () => {
    for (const client of clients) client.close();
    await proxy?.close();
    await platform?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A freshly registered device's credentials, and a backup client reaching the gateway through `via`. */
  async function device(via = platform.gateway): Promise<{ client: BackupServiceClient; auth: Metadata }> {
    const accounts = new AccountServiceClient(platform.gateway, gatewayCredentials());
    clients.push(accounts);
    const generated = generateDeviceKeys(1);
    const registered = await unary(accounts.register.bind(accounts), {
      username: `t_${randomUUID().replace(/-/g, '').slice(0, 12)}`,
      identityKey: Buffer.from(generated.identity.publicKey.serialize()),
      device: publicDeviceKeys(generated),
    });
    const auth = authorizationMetadata(registered);
    const client = new BackupServiceClient(via, gatewayCredentials());
    clients.push(client);
    return { client, auth };
  }

  it('resumes an upload and a download cut halfway, to bytes identical to an uncut copy', async () => {
    const data = randomBytes(12 * 1024 * 1024 + 4321);
    const path = join(dir, 'original');
    writeFileSync(path, data);
    const { client, auth } = await device(proxy.address);

    let cutAt = 0;
    const cutOnceAtHalf = ({ done, total }: { done: number; total: number }) => {
      if (cutAt === 0 && done >= total / 2) {
        cutAt = done;
        proxy.cut();
      }
    };
    const uploaded = await uploadBackupFile({
      client,
      metadata: auth,
      path,
      size: data.length,
      sha256: sha256(data),
      onProgress: cutOnceAtHalf,
    });
    expect(cutAt).toBeGreaterThan(0);
    expect(uploaded).toMatchObject({ version: '1', size: String(data.length) });
    expect(Buffer.from(uploaded.sha256).equals(sha256(data))).toBe(true);

    cutAt = 0;
    const copy = join(dir, 'restored');
    const downloaded = await downloadBackupFile({
      client,
      metadata: auth,
      path: copy,
      onProgress: cutOnceAtHalf,
    });
    expect(cutAt).toBeGreaterThan(0);
    expect(downloaded.version).toBe('1');
    expect(readFileSync(copy).equals(data)).toBe(true);
  });

  it('refuses every backup and vault call without credentials, and stores nothing', async () => {
    const backups = new BackupServiceClient(platform.gateway, gatewayCredentials());
    const vault = new VaultServiceClient(platform.gateway, gatewayCredentials());
    clients.push(backups, vault);
    const refusal = (call: Promise<unknown>) =>
      call.then(
        () => 'answered',
        (error: unknown) => error,
      );
    const noCredentials = new Metadata();
    const answers = await Promise.all([
      refusal(
        unary(
          backups.createBackupUpload.bind(backups),
          { size: '10', sha256: Buffer.alloc(32) },
          { metadata: noCredentials },
        ),
      ),
      refusal(unary(backups.getBackupStatus.bind(backups), {}, { metadata: noCredentials })),
      refusal(
        unary(backups.getBackupUpload.bind(backups), { uploadId: randomUUID() }, { metadata: noCredentials }),
      ),
      refusal(
        new Promise((resolve, reject) => {
          const call = backups.uploadBackup(noCredentials, (error, response) =>
            error ? reject(error) : resolve(response),
          );
          call.write({ start: { uploadId: randomUUID(), offset: '0' } });
          call.write({ chunk: Buffer.from('not yours to store') });
          call.end();
        }),
      ),
      refusal(
        new Promise((resolve, reject) => {
          const call = backups.downloadBackup({ version: '0', offset: '0' }, noCredentials);
          call.on('data', () => undefined);
          call.on('error', reject);
          call.on('end', resolve);
        }),
      ),
      refusal(
        unary(
          vault.startVaultRegistration.bind(vault),
          { registrationRequest: Buffer.alloc(32) },
          { metadata: noCredentials },
        ),
      ),
      refusal(unary(vault.deleteVault.bind(vault), {}, { metadata: noCredentials })),
    ]);
    expect(answers).toEqual(
      Array(answers.length).fill(expect.objectContaining({ code: status.UNAUTHENTICATED })),
    );
  });

  it("keeps one account's uploads and backups from another, changing nothing", async () => {
    const owner = await device();
    const other = await device();
    const data = randomBytes(1000);
    const path = join(dir, 'owner');
    writeFileSync(path, data);
    const created = await unary(
      owner.client.createBackupUpload.bind(owner.client),
      { size: String(data.length), sha256: sha256(data) },
      { metadata: owner.auth },
    );

    const peek = await unary(
      other.client.getBackupUpload.bind(other.client),
      { uploadId: created.uploadId },
      { metadata: other.auth },
    ).catch((error: unknown) => error);
    expect(peek).toMatchObject({ code: status.NOT_FOUND });
    const hijack = await new Promise((resolve, reject) => {
      const call = other.client.uploadBackup(other.auth, (error, response) =>
        error ? reject(error) : resolve(response),
      );
      call.write({ start: { uploadId: created.uploadId, offset: '0' } });
      call.write({ chunk: data });
      call.end();
    }).catch((error: unknown) => error);
    expect(hijack).toMatchObject({ code: status.NOT_FOUND });

    // The owner's upload is untouched: nothing received, and it completes as declared.
    expect(
      await unary(
        owner.client.getBackupUpload.bind(owner.client),
        { uploadId: created.uploadId },
        { metadata: owner.auth },
      ),
    ).toMatchObject({ received: '0', complete: false });
    await uploadBackupFile({
      client: owner.client,
      metadata: owner.auth,
      path,
      size: data.length,
      sha256: sha256(data),
    });
    const status_ = await unary(
      other.client.getBackupStatus.bind(other.client),
      {},
      { metadata: other.auth },
    );
    expect(status_.versions).toEqual([]);
    const otherCopy = join(dir, 'other-copy');
    await expect(
      downloadBackupFile({ client: other.client, metadata: other.auth, path: otherCopy }),
    ).rejects.toMatchObject({ code: status.NOT_FOUND });
  });
});
