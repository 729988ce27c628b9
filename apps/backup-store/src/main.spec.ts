import { CONTRACTS } from '@sotto/contracts';
import { describeServiceBoot } from '@sotto/testing';

describeServiceBoot('backup-store', CONTRACTS['backup-store'], {
  variable: 'BACKUP_QUOTA_BYTES',
  value: 'lots',
});
