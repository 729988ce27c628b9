import { z } from 'zod';
import { checkClientTls, clientTlsShape, clientTlsVariables, commaList, url } from '@sotto/platform/config';
import type { RedisConnection } from './redis.module';

const TLS = clientTlsVariables('REDIS');

/**
 * The environment of a Redis client, for every service that uses Redis: one
 * server (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER_NODES), never both;
 * over TLS (rediss://, or REDIS_CLUSTER_TLS=on) the CA the server's
 * certificate must chain to and the client's own certificate, if the server
 * asks for one. Compose it into a service's schema with `.and(redisEnv)`.
 */
export const redisEnv = z
  .object({
    /** redis://host:port, or rediss://host:port for TLS with the server's certificate verified. */
    REDIS_URL: url(['redis', 'rediss']).optional(),
    /**
     * host:port,host:port,...: some nodes of a Redis Cluster (any of them; the client learns the rest
     * from them). Every script and multi-key command the services run keeps its keys in one slot.
     */
    REDIS_CLUSTER_NODES: commaList().optional(),
    /** on: reach the cluster's nodes over TLS, verifying each node's certificate. */
    REDIS_CLUSTER_TLS: z.enum(['on', 'off'], { message: 'expected on or off' }).default('off'),
    /** REDIS_TLS_CA (unset: the system's roots), REDIS_TLS_CERT and REDIS_TLS_KEY. */
    ...clientTlsShape('REDIS'),
  })
  .superRefine((env, context) => {
    const problem = (variable: string, message: string): void =>
      context.addIssue({ code: 'custom', path: [variable], message });
    if (env.REDIS_URL === undefined && env.REDIS_CLUSTER_NODES === undefined) {
      // Named as one "variable", so the start-up error says which two would do.
      problem(
        'REDIS_URL or REDIS_CLUSTER_NODES',
        'one is required: a Redis server, or the nodes of a Redis Cluster',
      );
      return;
    }
    if (env.REDIS_URL !== undefined && env.REDIS_CLUSTER_NODES !== undefined) {
      problem(
        'REDIS_CLUSTER_NODES',
        'is set with REDIS_URL: set REDIS_URL for one Redis server or REDIS_CLUSTER_NODES for a Redis Cluster, not both',
      );
      return;
    }
    if (env.REDIS_URL !== undefined) {
      if (env.REDIS_CLUSTER_TLS === 'on') {
        problem(
          'REDIS_CLUSTER_TLS',
          'is read only with REDIS_CLUSTER_NODES: for one server, make REDIS_URL rediss://',
        );
      }
      checkClientTls(env, TLS, { on: isTls(env.REDIS_URL), turnOn: 'make REDIS_URL rediss://' }, context);
    } else {
      checkClientTls(
        env,
        TLS,
        { on: env.REDIS_CLUSTER_TLS === 'on', turnOn: 'set REDIS_CLUSTER_TLS=on' },
        context,
      );
    }
  });

export type RedisEnv = z.output<typeof redisEnv>;

function isTls(url: string): boolean {
  return url.startsWith('rediss:');
}

/** How RedisModule reaches the server, or the cluster, the environment names. */
export function redisConnection(env: RedisEnv): RedisConnection {
  const tls = { ca: env.REDIS_TLS_CA, cert: env.REDIS_TLS_CERT, key: env.REDIS_TLS_KEY };
  if (env.REDIS_CLUSTER_NODES !== undefined) {
    return env.REDIS_CLUSTER_TLS === 'on'
      ? { clusterNodes: env.REDIS_CLUSTER_NODES, tls }
      : { clusterNodes: env.REDIS_CLUSTER_NODES };
  }
  // The schema holds one or the other.
  const url = env.REDIS_URL ?? '';
  return isTls(url) ? { url, tls } : { url };
}
