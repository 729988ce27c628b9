import type { z } from 'zod';
import { positiveInt } from '@sotto/platform/config';
import { serviceEnvSchema } from '@sotto/platform/grpc';
import { postgresEnv } from '@sotto/platform/postgres';
import { redisEnv } from '@sotto/platform/redis';

export const directoryEnv = serviceEnvSchema(
  { grpc: '127.0.0.1:7401', metrics: '127.0.0.1:9401' },
  {
    /** Bundle fetches one account may make for another per window. */
    PREKEY_FETCH_LIMIT: positiveInt().default(60),
    PREKEY_FETCH_WINDOW_SECONDS: positiveInt().default(3600),
  },
)
  .and(postgresEnv)
  // Rate limits for bundle fetches live in Redis, shared by every replica.
  .and(redisEnv);
export type DirectoryEnv = z.output<typeof directoryEnv>;
