/*
 * Backup file throughput and memory on a large history, generated on disk.
 *
 *   node -r @swc-node/register libs/client-sdk/bench/backup-file.bench.ts [history MB, default 200]
 *
 * Prints MB/s for writing the backup (history read, compressed, encrypted,
 * authenticated), opening it (the tag check over the whole file), restoring
 * it (second pass: decrypt, inflate, split records, write history) and the SHA-256
 * for the upload, with the process's peak RSS above its starting point. Exits
 * non-zero if that peak exceeds MEMORY_BOUND_MB: memory must not grow with
 * the history.
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  backupFileDigest,
  collectBackup,
  deriveBackupFileKeys,
  generateRecoveryKey,
  openBackupFile,
  restoreProfile,
  writeBackupFile,
} from '../src/backup';
import { createSampleProfile, writeSampleHistory } from '../src/backup/testing/sample-profile';
import { Profile } from '../src/profile';

const MEMORY_BOUND_MB = 128;
const MB = 1024 * 1024;

async function measure<T>(
  label: string,
  megabytes: number,
  run: () => Promise<T>,
): Promise<{ result: T; peakMb: number }> {
  const base = process.memoryUsage().rss;
  let peak = base;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const started = process.hrtime.bigint();
  const result = await run();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage().rss);
  const peakMb = (peak - base) / MB;
  console.log(
    `${label.padEnd(34)} ${seconds.toFixed(2).padStart(7)} s  ${(megabytes / seconds).toFixed(1).padStart(7)} MB/s  peak RSS +${peakMb.toFixed(0)} MB`,
  );
  return { result, peakMb };
}

/** Runs in a child process, so the history it builds leaves no trace in the measured process's memory. */
async function generate(dir: string, targetMb: number): Promise<void> {
  const sample = await createSampleProfile(dir, 0);
  const usernames = sample.contacts.map((contact) => contact.username);
  while (statSync(join(dir, 'history.jsonl')).size < targetMb * MB) {
    await writeSampleHistory(sample.profile, 100_000, usernames);
  }
}

async function main(targetMb: number): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'sotto-backup-bench-'));
  try {
    const generator = fork(__filename, ['generate', join(work, 'old'), String(targetMb)]);
    const [code] = (await once(generator, 'exit')) as [number];
    if (code !== 0) throw new Error(`generating the history failed (${code})`);
    const profile = new Profile(join(work, 'old'));
    const historyMb = statSync(join(profile.dir, 'history.jsonl')).size / MB;
    console.log(`history: ${historyMb.toFixed(1)} MB of JSON lines; MB/s below are of history unless noted`);
    console.log(`starting RSS ${(process.memoryUsage().rss / MB).toFixed(0)} MB`);

    const keys = deriveBackupFileKeys(generateRecoveryKey(), profile.account().accountId);
    const backupPath = join(work, 'backup.bak');
    const peaks: number[] = [];
    const written = await measure('write (collect+gzip+AES+HMAC)', historyMb, () =>
      writeBackupFile(backupPath, collectBackup(profile), keys),
    );
    peaks.push(written.peakMb);
    const fileMb = written.result.size / MB;
    console.log(
      `backup file: ${fileMb.toFixed(1)} MB (${((100 * fileMb) / historyMb).toFixed(0)}% of the history)`,
    );

    const opened = await measure(`open: tag check (MB/s of file)`, fileMb, () =>
      openBackupFile(backupPath, keys),
    );
    peaks.push(opened.peakMb);
    const restored = await measure('restore (AES+inflate+records+write)', historyMb, () =>
      restoreProfile(new Profile(join(work, 'new')), opened.result),
    );
    peaks.push(restored.peakMb);
    console.log(`restored ${restored.result.historyEntries} history entries`);
    peaks.push(
      (await measure('SHA-256 for upload (MB/s of file)', fileMb, () => backupFileDigest(backupPath))).peakMb,
    );

    const worst = Math.max(...peaks);
    console.log(`bounded memory: peak RSS growth ${worst.toFixed(0)} MB (bound ${MEMORY_BOUND_MB} MB)`);
    if (worst > MEMORY_BOUND_MB) process.exitCode = 1;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'generate') void generate(process.argv[3], Number(process.argv[4]));
else void main(Number(process.argv[2] ?? 200));
