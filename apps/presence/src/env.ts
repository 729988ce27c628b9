import type { z } from 'zod';
import { positiveInt } from '@sotto/platform/config';
import { serviceEnvSchema } from '@sotto/platform/grpc';
import { redisEnv } from '@sotto/platform/redis';

export const presenceEnv = serviceEnvSchema(
  { grpc: '127.0.0.1:7403', metrics: '127.0.0.1:9403' },
  {
    /** How long a stream claim lives without a heartbeat from its gateway. */
    PRESENCE_TTL_MS: positiveInt().default(60_000),
  },
).and(redisEnv);
export type PresenceEnv = z.output<typeof presenceEnv>;
