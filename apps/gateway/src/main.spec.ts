import { CONTRACTS } from '@sotto/contracts';
import { describeServiceBoot } from '@sotto/testing';

describeServiceBoot('gateway', CONTRACTS.gateway, { variable: 'REDIS_URL', value: 'localhost:6379' });
