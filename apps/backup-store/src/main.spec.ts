import { CONTRACTS } from '@sotto/contracts';
import { describeServiceBoot, runServiceToExit } from '@sotto/testing';

describeServiceBoot('backup-store', CONTRACTS['backup-store'], {
  variable: 'BACKUP_QUOTA_BYTES',
  value: 'lots',
});

describe('backup-store S3 settings', () => {
  const base = { DATABASE_URL: 'postgres://sotto@127.0.0.1:1/sotto', BACKUP_S3_BUCKET: 'sotto-backups' };

  it.each([
    [
      'BACKUP_S3_ENDPOINT',
      { BACKUP_S3_ENDPOINT: 'minio:9000' },
      'expected a URL starting with http:// or https://',
    ],
    ['BACKUP_S3_FORCE_PATH_STYLE', { BACKUP_S3_FORCE_PATH_STYLE: 'yes' }, 'expected true or false'],
    ['BACKUP_S3_SECRET_ACCESS_KEY', { BACKUP_S3_ACCESS_KEY_ID: 'key' }, 'is required'],
    [
      'BACKUP_S3_PART_BYTES',
      { BACKUP_S3_PART_BYTES: String(1024 * 1024) },
      "expected at least 5242880 (5 MiB, S3's minimum part)",
    ],
    [
      'BACKUP_S3_BUFFER_BYTES',
      { BACKUP_S3_BUFFER_BYTES: String(8 * 1024 * 1024) },
      "must hold at least one part's buffer (BACKUP_S3_PART_BYTES + 1 MiB chunk - 1): expected at least 9437183",
    ],
    ['BACKUP_S3_BUFFER_BYTES', { BACKUP_S3_BUFFER_BYTES: '-1' }, 'expected a number greater than 0'],
    [
      'BACKUP_S3_BUFFER_WAIT_SECONDS',
      { BACKUP_S3_BUFFER_WAIT_SECONDS: '0' },
      'expected a number greater than 0',
    ],
    [
      'BACKUP_S3_BUFFER_WAIT_SECONDS',
      { BACKUP_S3_BUFFER_WAIT_SECONDS: '86401' },
      'expected at most 86400 (a day)',
    ],
    ['BACKUP_S3_BUFFER_WAIT_SECONDS', { BACKUP_S3_BUFFER_WAIT_SECONDS: '1.5' }, 'expected a whole number'],
  ])('exits non-zero naming %s when it is invalid', async (variable, env, message) => {
    const { code, stderr } = await runServiceToExit('backup-store', { ...base, ...env });
    expect(code).toBe(78);
    expect(stderr).toContain('backup-store: invalid environment:');
    expect(stderr).toContain(`  ${variable}: ${message}\n`);
  });

  it('exits non-zero naming BACKUP_S3_BUCKET when other S3 settings come without it', async () => {
    const { code, stderr } = await runServiceToExit('backup-store', {
      DATABASE_URL: base.DATABASE_URL,
      BACKUP_S3_ENDPOINT: 'http://127.0.0.1:9000',
    });
    expect(code).toBe(78);
    expect(stderr).toContain('  BACKUP_S3_BUCKET: is required\n');
  });
});
