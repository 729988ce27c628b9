import { CONTRACTS } from '@sotto/contracts';
import { describeServiceBoot } from '@sotto/testing';

describeServiceBoot('presence', CONTRACTS.presence, { variable: 'GRPC_ADDR', value: '7403' });
