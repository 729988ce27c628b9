import type { z } from 'zod';
import { commaList, hostPort, positiveInt, url } from '@sotto/platform/config';
import { serviceEnvSchema } from '@sotto/platform/grpc';

export const relayEnv = serviceEnvSchema(
  { grpc: '127.0.0.1:7402', metrics: '127.0.0.1:9402' },
  {
    KAFKA_BROKERS: commaList(),
    REDIS_URL: url(['redis', 'rediss']),
    PREKEY_DIRECTORY_ADDR: hostPort().default('127.0.0.1:7401'),
    PRESENCE_ADDR: hostPort().default('127.0.0.1:7403'),
    /** Partitions of sotto.envelopes.v1 when the relay creates it; the unit of consumer parallelism. */
    ENVELOPE_TOPIC_PARTITIONS: positiveInt().default(8),
    /** 3 on a real cluster; 1 on a single local broker. */
    ENVELOPE_TOPIC_REPLICATION: positiveInt().default(1),
  },
);
export type RelayEnv = z.output<typeof relayEnv>;
export const RELAY_ENV = Symbol('RELAY_ENV');
