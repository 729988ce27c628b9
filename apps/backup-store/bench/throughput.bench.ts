/**
 * Backup throughput through gRPC to the backup-store directly: uploads a
 * random blob in 1 MiB chunks (CreateUpload + UploadChunks) and downloads it
 * again (DownloadBackup), checking the SHA-256, and reports MB/s (10^6 bytes)
 * for each, plus the service's CPU time and peak memory.
 *
 *   node -r @swc-node/register apps/backup-store/bench/throughput.bench.ts [--mb 200] [--runs 3] [--store local|s3]
 *
 * It starts its own PostgreSQL and backup-store (and, with --store s3, moto's
 * S3-compatible server, installed under .sotto/tools the first time) in a
 * scratch directory, and stops them afterwards.
 */
/* eslint-disable @nx/enforce-module-boundaries -- a benchmark, not service code: it starts the
   service and its PostgreSQL the way npm start does, through the local-infra and stack libraries,
   and moto's S3 server the way the tests do. */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { ensureTestTools, freePort, motoTool, startPostgres } from '@sotto/local-infra';
import { mutualTlsCredentials } from '@sotto/contracts';
import { operatorTls, preparePlatformPki, startServiceProcess } from '@sotto/stack';
import { startS3Server, type S3TestServer } from '@sotto/testing';
/* eslint-enable @nx/enforce-module-boundaries */
import { BackupTestClient, sha256 } from '../src/testing/backup-client';

const say = (line: string): void => void process.stdout.write(`${line}\n`);
const note = (line: string): void => void process.stderr.write(`${line}\n`);

function options(): { bytes: number; runs: number; store: 'local' | 's3' } {
  const { values } = parseArgs({
    options: {
      mb: { type: 'string', default: '200' },
      runs: { type: 'string', default: '3' },
      store: { type: 'string', default: 'local' },
    },
  });
  const mb = Number(values.mb);
  const runs = Number(values.runs);
  if (!Number.isInteger(mb) || mb < 1 || mb > 2000)
    throw new Error(`--mb: expected 1 to 2000, got ${values.mb}`);
  if (!Number.isInteger(runs) || runs < 1 || runs > 20)
    throw new Error(`--runs: expected 1 to 20, got ${values.runs}`);
  if (values.store !== 'local' && values.store !== 's3') throw new Error(`--store: expected local or s3`);
  return { bytes: mb * 1_000_000, runs, store: values.store };
}

/** User + system CPU seconds a process has used so far, from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  // utime and stime are fields 14 and 15 of stat; fields[0] here is field 3.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Peak resident memory of a process, in MB. */
function peakRssMb(pid: number): number {
  const kb = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) / 1000;
}

async function main(): Promise<void> {
  const { bytes, runs, store } = options();
  const dir = mkdtempSync(join(tmpdir(), 'sotto-backup-bench-'));
  const postgres = await startPostgres({ dataDir: join(dir, 'postgres') });
  let s3Server: S3TestServer | undefined;
  try {
    let storeEnv: Record<string, string> = { BACKUP_BLOB_DIR: join(dir, 'blobs') };
    if (store === 's3') {
      await ensureTestTools([motoTool], { info: note, warn: note });
      s3Server = await startS3Server({ port: await freePort(), logFile: join(dir, 'moto.log') });
      storeEnv = s3Server.env('sotto-bench');
      const s3 = new S3Client({
        region: 'us-east-1',
        endpoint: s3Server.endpoint,
        forcePathStyle: true,
        credentials: {
          accessKeyId: storeEnv['BACKUP_S3_ACCESS_KEY_ID'],
          secretAccessKey: storeEnv['BACKUP_S3_SECRET_ACCESS_KEY'],
        },
      });
      await s3.send(new CreateBucketCommand({ Bucket: 'sotto-bench' }));
      s3.destroy();
    }
    const tls = await preparePlatformPki(join(dir, 'tls'));
    const own = tls.identities['backup-store'];
    const gateway = tls.identities['gateway'];
    if (own === undefined || gateway === undefined) throw new Error('the local CA issued no certificates');
    const service = await startServiceProcess({
      name: 'backup-store',
      env: {
        GRPC_ADDR: `127.0.0.1:${await freePort()}`,
        METRICS_ADDR: `127.0.0.1:${await freePort()}`,
        GRPC_TLS_CA: tls.ca,
        GRPC_TLS_CERT: own.cert,
        GRPC_TLS_KEY: own.key,
        DATABASE_URL: postgres.url,
        LOG_LEVEL: 'warn',
        BACKUP_VERSIONS_KEPT: '2',
        ...storeEnv,
      },
      logFile: join(dir, 'backup-store.log'),
      operator: operatorTls(tls),
    });
    // The bench calls as the gateway does, over mutual TLS.
    const client = new BackupTestClient(
      service.grpc,
      mutualTlsCredentials({ ca: tls.ca, ...gateway }, 'backup-store'),
    );
    try {
      say(`backup-store on ${store}, ${bytes / 1_000_000} MB blob, ${runs} runs`);
      const data = randomBytes(bytes);
      const digest = sha256(data);
      const accountId = randomUUID();
      for (let run = 1; run <= runs; run++) {
        const cpuBefore = cpuSeconds(service.pid);
        let started = process.hrtime.bigint();
        const { uploadId } = await client.createUpload(accountId, data.length, digest);
        const answer = await client.upload(accountId, uploadId, data);
        const uploadSeconds = Number(process.hrtime.bigint() - started) / 1e9;
        if (!answer.complete) throw new Error('upload did not complete');
        const cpuMid = cpuSeconds(service.pid);

        started = process.hrtime.bigint();
        const download = await client.download(accountId);
        const downloadSeconds = Number(process.hrtime.bigint() - started) / 1e9;
        if (!sha256(download.data).equals(digest)) throw new Error('downloaded blob differs');
        const cpuAfter = cpuSeconds(service.pid);

        say(
          `run ${run}: upload ${(bytes / 1e6 / uploadSeconds).toFixed(1)} MB/s ` +
            `(${uploadSeconds.toFixed(2)} s, service CPU ${(cpuMid - cpuBefore).toFixed(2)} s), ` +
            `download ${(bytes / 1e6 / downloadSeconds).toFixed(1)} MB/s ` +
            `(${downloadSeconds.toFixed(2)} s, service CPU ${(cpuAfter - cpuMid).toFixed(2)} s)`,
        );
      }
      say(`service peak RSS ${peakRssMb(service.pid).toFixed(0)} MB`);
    } finally {
      client.close();
      await service.stop();
    }
  } finally {
    await s3Server?.stop();
    await postgres.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
