import { Injectable } from '@nestjs/common';
import { Counter, Gauge, Registry } from 'prom-client';
import type { BudgetObserver } from '../blobs/buffer-budget';

export type CompletionOutcome = 'version' | 'digest_mismatch';

/**
 * What SREs watch on the backup store: bytes in and out, completions, quota
 * refusals, and the S3 upload buffer budget.
 */
@Injectable()
export class BackupMetrics {
  private readonly registers: Registry[];
  private readonly bufferedBytes: Gauge;
  private readonly bufferWaits: Counter<'outcome'>;
  private readonly uploaded: Counter;
  private readonly downloaded: Counter;
  private readonly completions: Counter<'outcome'>;
  private readonly quotaRefusals: Counter<'reason'>;

  /** The service's registry, which runService serves on /metrics. */
  constructor(registry: Registry) {
    const registers = [registry];
    this.registers = registers;
    this.bufferedBytes = new Gauge({
      name: 'sotto_backup_s3_buffer_bytes',
      help: 'Bytes reserved by S3 part buffers of uploads in progress, the most they hold; capped by BACKUP_S3_BUFFER_BYTES.',
      registers,
    });
    this.bufferWaits = new Counter({
      name: 'sotto_backup_s3_buffer_waits_total',
      help:
        'Upload streams that waited for room in the S3 upload buffer, by how the wait ended: ' +
        'granted, refused (RESOURCE_EXHAUSTED after BACKUP_S3_BUFFER_WAIT_SECONDS) or cancelled (the stream went away).',
      labelNames: ['outcome'],
      registers,
    });
    this.uploaded = new Counter({
      name: 'sotto_backup_uploaded_bytes_total',
      help: 'Backup bytes received from clients in UploadChunks.',
      registers,
    });
    this.downloaded = new Counter({
      name: 'sotto_backup_downloaded_bytes_total',
      help: 'Backup bytes sent to clients in DownloadBackup.',
      registers,
    });
    this.completions = new Counter({
      name: 'sotto_backup_upload_completions_total',
      help: 'Uploads whose last byte arrived: became a version, or refused for a SHA-256 mismatch.',
      labelNames: ['outcome'],
      registers,
    });
    this.quotaRefusals = new Counter({
      name: 'sotto_backup_quota_refusals_total',
      help: 'CreateUpload calls refused with RESOURCE_EXHAUSTED, by reason.',
      labelNames: ['reason'],
      registers,
    });
  }

  bytesUploaded(bytes: number): void {
    this.uploaded.inc(bytes);
  }

  bytesDownloaded(bytes: number): void {
    this.downloaded.inc(bytes);
  }

  uploadCompleted(outcome: CompletionOutcome): void {
    this.completions.inc({ outcome });
  }

  quotaRefused(reason: 'bytes' | 'uploads'): void {
    this.quotaRefusals.inc({ reason });
  }

  /** The S3 upload buffer budget's observer; `capacityBytes` is published once as its own gauge. */
  s3Buffer(capacityBytes: number): BudgetObserver {
    new Gauge({
      name: 'sotto_backup_s3_buffer_capacity_bytes',
      help: 'BACKUP_S3_BUFFER_BYTES: the most all S3 part buffers of this process may hold together.',
      registers: this.registers,
    }).set(capacityBytes);
    const peak = new Gauge({
      name: 'sotto_backup_s3_buffer_peak_bytes',
      help: 'The most bytes S3 part buffers reserved at once since the process started; for sizing BACKUP_S3_BUFFER_BYTES.',
      registers: this.registers,
    });
    const waiting = new Gauge({
      name: 'sotto_backup_s3_buffer_waiting_streams',
      help: 'Upload streams waiting for room in the S3 upload buffer now, not reading their clients.',
      registers: this.registers,
    });
    let most = 0;
    return {
      reserved: (bytes) => {
        this.bufferedBytes.set(bytes);
        if (bytes > most) peak.set((most = bytes));
      },
      queued: (count) => waiting.set(count),
      waited: (outcome) => this.bufferWaits.inc({ outcome }),
    };
  }
}
