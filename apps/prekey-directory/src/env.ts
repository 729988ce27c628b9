import type { z } from 'zod';
import { positiveInt, rate, rateLimitsSwitch } from '@sotto/platform/config';
import { serviceEnvSchema } from '@sotto/platform/grpc';
import { postgresEnv } from '@sotto/platform/postgres';
import { redisEnv } from '@sotto/platform/redis';

export const directoryEnv = serviceEnvSchema(
  { grpc: '127.0.0.1:7401', metrics: '127.0.0.1:9401' },
  {
    /** Bundle fetches one account may make for another per window. */
    PREKEY_FETCH_LIMIT: positiveInt().default(60),
    PREKEY_FETCH_WINDOW_SECONDS: positiveInt().default(3600),
    /** "off" turns every rate limit off, for load tests only; the directory says so as it starts. */
    SOTTO_RATE_LIMITS: rateLimitsSwitch(),
    /**
     * One-time prekeys one device hands out, to everyone together, as <count>/<period>. Past it,
     * bundles come without a one-time EC key and with the last-resort Kyber key: sessions still
     * start, and no crowd of requesters can drain a device's keys.
     */
    RATE_LIMIT_ONE_TIME_PREKEYS_PER_DEVICE: rate('50/1d'),
    /** Devices one account may have, linked ones included (libsignal addresses at most 127). */
    MAX_DEVICES_PER_ACCOUNT: positiveInt().max(127, { message: 'expected at most 127' }).default(6),
    /** How long a link code works, from CreateLink to CompleteLink. */
    LINK_TOKEN_TTL_SECONDS: positiveInt().default(600),
  },
)
  .and(postgresEnv)
  // Rate limits for bundle fetches live in Redis, shared by every replica.
  .and(redisEnv);
export type DirectoryEnv = z.output<typeof directoryEnv>;
