import { Injectable } from '@nestjs/common';
import { Counter, Registry } from 'prom-client';

export type CompletionOutcome = 'version' | 'digest_mismatch';

/** What SREs watch on the backup store: bytes in and out, completions, quota refusals. */
@Injectable()
export class BackupMetrics {
  private readonly uploaded: Counter;
  private readonly downloaded: Counter;
  private readonly completions: Counter<'outcome'>;
  private readonly quotaRefusals: Counter<'reason'>;

  /** The service's registry, which runService serves on /metrics. */
  constructor(registry: Registry) {
    const registers = [registry];
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
}
