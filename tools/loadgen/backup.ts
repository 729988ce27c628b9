/**
 * The backup benchmark: one device uploads a backup of --size-mb through
 * the gateway to the backup-store and downloads it again, with the SDK's
 * resumable transfers and SHA-256 checks; then it protects a recovery key
 * with a password and recovers it --logins times (OPAQUE through the gateway
 * to the key-vault, whose setup and records are sealed in the HSM). It
 * reports MB/s each way and the server CPU time each step took.
 *
 *   npm run loadgen:backup -- [--size-mb 200] [--logins 20] [--server HOST:PORT [--ca FILE]] [--json]
 *
 * Without --server it starts its own platform, exactly as `npm start` runs
 * it, with the vault's login rate limits raised for the logins it makes, and
 * measures CPU per process. Against a running platform it measures time only,
 * and the logins are held to that vault's rate limits.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  authorizationMetadata,
  downloadBackupFile,
  gatewayCredentials,
  generateDeviceKeys,
  generateRecoveryKey,
  protectRecoveryKey,
  publicDeviceKeys,
  recoverWithPassword,
  unary,
  uploadBackupFile,
} from '@sotto/client-sdk';
import {
  AccountServiceClient,
  BackupServiceClient,
  VaultServiceClient,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { cpuSeconds } from './cpu';
import { runLoad, wholeNumber } from './own-platform';

interface Options {
  readonly sizeMb: number;
  readonly logins: number;
  readonly server?: string;
  readonly ca?: string;
  readonly json: boolean;
}

const MB = 1_000_000;
const say = (line: string): void => void process.stderr.write(`[loadgen:backup] ${line}\n`);

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      'size-mb': { type: 'string', default: '200' },
      logins: { type: 'string', default: '20' },
      server: { type: 'string' },
      ca: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const count = (name: 'size-mb' | 'logins', max: number): number => wholeNumber(name, values[name], max);
  return {
    sizeMb: count('size-mb', 2000),
    logins: count('logins', 1000),
    server: values.server,
    ca: values.ca,
    json: values.json ?? false,
  };
}

/** Writes `bytes` of random data (a ciphertext is indistinguishable from it) and returns its SHA-256. */
async function randomFile(path: string, bytes: number): Promise<Buffer> {
  const digest = createHash('sha256');
  const file = createWriteStream(path, { mode: 0o600 });
  for (let written = 0; written < bytes;) {
    const chunk = randomBytes(Math.min(4 * 1024 * 1024, bytes - written));
    digest.update(chunk);
    if (!file.write(chunk)) await new Promise<void>((resolve) => file.once('drain', () => resolve()));
    written += chunk.length;
  }
  await new Promise<void>((resolve, reject) =>
    file.end((error?: Error | null) => (error ? reject(error) : resolve())),
  );
  return digest.digest();
}

/** Runs `work`, returning its wall time and the CPU seconds each measured process spent meanwhile. */
async function measured(
  pids: Record<string, number>,
  work: () => Promise<unknown>,
): Promise<{ seconds: number; cpuSeconds: Record<string, number> }> {
  const before = cpuSeconds(pids);
  const started = process.hrtime.bigint();
  await work();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const after = cpuSeconds(pids);
  return {
    seconds,
    cpuSeconds: Object.fromEntries(
      Object.keys(pids).map((name) => [name, Number(((after[name] ?? 0) - (before[name] ?? 0)).toFixed(2))]),
    ),
  };
}

async function run(
  options: Options,
  server: string,
  pids: Record<string, number>,
  ca: string | undefined,
): Promise<object> {
  const dir = mkdtempSync(join(tmpdir(), 'sotto-loadgen-backup-'));
  const tls = gatewayCredentials(server, { ca });
  const accounts = new AccountServiceClient(server, tls);
  const backups = new BackupServiceClient(server, tls);
  const vault = new VaultServiceClient(server, tls);
  try {
    const username = `lgb_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
    const keys = generateDeviceKeys(1);
    const device = await unary(accounts.register.bind(accounts), {
      username,
      identityKey: Buffer.from(keys.identity.publicKey.serialize()),
      device: publicDeviceKeys(keys),
    });
    const metadata = authorizationMetadata(device);

    const size = options.sizeMb * MB;
    const path = join(dir, 'backup');
    say(`writing a ${options.sizeMb} MB backup file`);
    const sha256 = await randomFile(path, size);

    say('uploading');
    const upload = await measured(pids, () =>
      uploadBackupFile({ client: backups, metadata, path, size, sha256 }),
    );
    say('downloading');
    const download = await measured(pids, () =>
      downloadBackupFile({ client: backups, metadata, path: join(dir, 'downloaded'), onProgress: undefined }),
    );

    say(`protecting a recovery key with a password, then ${options.logins} OPAQUE logins`);
    const recoveryKey = generateRecoveryKey();
    const password = randomBytes(12).toString('base64');
    await protectRecoveryKey({ client: vault, metadata, recoveryKey, password });
    const logins = await measured(pids, async () => {
      for (let i = 0; i < options.logins; i++) {
        const recovered = await recoverWithPassword({ client: vault, username, password });
        if (recovered !== recoveryKey) throw new Error('a login recovered another key');
      }
    });

    const perLoginMs = (name: string): number | undefined =>
      logins.cpuSeconds[name] === undefined
        ? undefined
        : Number((((logins.cpuSeconds[name] ?? 0) * 1000) / options.logins).toFixed(2));
    return {
      backupMB: options.sizeMb,
      upload: {
        seconds: Number(upload.seconds.toFixed(2)),
        MBps: Number((options.sizeMb / upload.seconds).toFixed(1)),
        cpuSeconds: upload.cpuSeconds,
      },
      download: {
        seconds: Number(download.seconds.toFixed(2)),
        MBps: Number((options.sizeMb / download.seconds).toFixed(1)),
        cpuSeconds: download.cpuSeconds,
      },
      opaqueLogins: {
        logins: options.logins,
        msPerLogin: Number(((logins.seconds * 1000) / options.logins).toFixed(1)),
        serverCpuMsPerLogin: {
          keyVault: perLoginMs('key-vault'),
          gateway: perLoginMs('gateway'),
          postgres: perLoginMs('postgres'),
          redis: perLoginMs('redis'),
        },
        clientCpuMsPerLogin: perLoginMs('loadgen'),
      },
    };
  } finally {
    for (const client of [accounts, backups, vault]) client.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

// Room for two copies of the backup. Its logins are not limited: its platform runs with SOTTO_RATE_LIMITS=off.
runLoad(
  () => parseOptions(process.argv.slice(2)),
  say,
  run,
  (options) => ({
    'backup-store': { BACKUP_QUOTA_BYTES: String(2 * options.sizeMb * MB + MB) },
  }),
);
