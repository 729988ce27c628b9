import { z } from 'zod';
import { checkClientTls, clientTlsShape, clientTlsVariables, url } from '@sotto/platform/config';
import type { RedisConnection } from './redis.module';

const TLS = clientTlsVariables('REDIS');

/**
 * The environment of a Redis client, for every service that uses Redis:
 * REDIS_URL, and over TLS (rediss://) the CA its certificate must chain to and
 * the client's own certificate, if the server asks for one. Compose it into a
 * service's schema with `.and(redisEnv)`.
 */
export const redisEnv = z
  .object({
    /** redis://host:port, or rediss://host:port for TLS with the server's certificate verified. */
    REDIS_URL: url(['redis', 'rediss']),
    /** REDIS_TLS_CA (unset: the system's roots), REDIS_TLS_CERT and REDIS_TLS_KEY. */
    ...clientTlsShape('REDIS'),
  })
  .superRefine((env, context) => {
    checkClientTls(env, TLS, { on: isTls(env.REDIS_URL), turnOn: 'make REDIS_URL rediss://' }, context);
  });

export type RedisEnv = z.output<typeof redisEnv>;

function isTls(url: string): boolean {
  return url.startsWith('rediss:');
}

/** How RedisModule reaches the server the environment names. */
export function redisConnection(env: RedisEnv): RedisConnection {
  if (!isTls(env.REDIS_URL)) return { url: env.REDIS_URL };
  return {
    url: env.REDIS_URL,
    tls: { ca: env.REDIS_TLS_CA, cert: env.REDIS_TLS_CERT, key: env.REDIS_TLS_KEY },
  };
}
