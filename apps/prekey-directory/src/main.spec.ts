import { CONTRACTS } from '@sotto/contracts';
import { describeServiceBoot } from '@sotto/testing';

describeServiceBoot('prekey-directory', CONTRACTS['prekey-directory'], {
  variable: 'DATABASE_URL',
  value: 'mysql://db/x',
});
