import { CONTRACTS } from '@sotto/contracts';
import { describeServiceBoot } from '@sotto/testing';

describeServiceBoot('key-vault', CONTRACTS['key-vault'], { variable: 'DATABASE_URL', value: 'postgres' });
