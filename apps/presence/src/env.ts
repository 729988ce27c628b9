import type { z } from 'zod';
import { positiveInt, url } from '@sotto/platform/config';
import { serviceEnvSchema } from '@sotto/platform/grpc';

export const presenceEnv = serviceEnvSchema(
  { grpc: '127.0.0.1:7403', metrics: '127.0.0.1:9403' },
  {
    REDIS_URL: url(['redis', 'rediss']),
    /** How long a stream claim lives without a heartbeat from its gateway. */
    PRESENCE_TTL_MS: positiveInt().default(60_000),
  },
);
export type PresenceEnv = z.output<typeof presenceEnv>;
