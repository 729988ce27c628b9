import { CONTRACTS } from '@sotto/contracts';
import { describeServiceBoot } from '@sotto/testing';

describeServiceBoot('message-relay', CONTRACTS['message-relay'], {
  variable: 'KAFKA_BROKERS',
  value: 'kafka',
});
