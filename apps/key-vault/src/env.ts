import type { z } from 'zod';
import { url } from '@sotto/platform/config';
import { serviceEnvSchema } from '@sotto/platform/grpc';

export const vaultEnv = serviceEnvSchema(
  { grpc: '127.0.0.1:7405', metrics: '127.0.0.1:9405' },
  {
    DATABASE_URL: url(['postgres', 'postgresql']),
    // Recovery is unauthenticated by nature; its rate limits live in Redis.
    REDIS_URL: url(['redis', 'rediss']),
  },
);
export type VaultEnv = z.output<typeof vaultEnv>;
