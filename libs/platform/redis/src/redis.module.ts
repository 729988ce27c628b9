import { Inject, Logger, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { Cluster, Redis as Server, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { HostPort } from '@sotto/platform/config';
import { Readiness } from '@sotto/platform/health';
import { clientTlsOptions, type ClientTlsFiles } from '@sotto/platform/tls';
import { defineScripts } from './scripts';

export const REDIS = Symbol('REDIS');

/**
 * The service's Redis: one server, or a Redis Cluster. Both take the same
 * commands, scripts and pipelines; on a cluster every script and multi-key
 * command must keep its keys in one slot (hash tags: `{...}` in the key), and
 * pub/sub goes through `redisPubSub`.
 */
export type Redis = Server | Cluster;

/** One Redis server: its URL and, for rediss://, what the client trusts and presents. */
export interface RedisServerConnection {
  /** redis://host:port, or rediss://host:port for TLS. */
  readonly url: string;
  /** For rediss:// only; unset CA means the system's roots. */
  readonly tls?: ClientTlsFiles;
}

/** A Redis Cluster: some of its nodes and, over TLS, what the client trusts and presents. */
export interface RedisClusterConnection {
  readonly clusterNodes: readonly HostPort[];
  /** Set: every node is reached over TLS (unset CA means the system's roots). */
  readonly tls?: ClientTlsFiles;
}

export type RedisConnection = RedisServerConnection | RedisClusterConnection;

export function isClusterConnection(connection: RedisConnection): connection is RedisClusterConnection {
  return 'clusterNodes' in connection;
}

/**
 * ioredis options for a connection: over rediss:// the server's certificate
 * must chain to the CA and name the host in the URL, and the client presents
 * its certificate if it has one. A redis:// URL with TLS files is refused,
 * rather than sent in plaintext to a server someone meant to verify.
 */
export function redisClientOptions(connection: RedisServerConnection): RedisOptions {
  const tls = connection.url.startsWith('rediss:');
  if (!tls && connection.tls !== undefined) {
    throw new Error('TLS settings for a redis:// URL: use rediss:// to reach Redis over TLS');
  }
  return tls ? { tls: clientTlsOptions(connection.tls ?? {}) } : {};
}

/**
 * ioredis cluster options: each node over TLS when the connection says so,
 * its certificate verified against the address the cluster announces for it
 * (dnsLookup passes names through, so a node announced by hostname is verified
 * by that name); reads and writes both go to masters, so a read never sees a
 * replica that is behind.
 */
export function redisClusterOptions(connection: RedisClusterConnection): ClusterOptions {
  return {
    redisOptions: {
      ...(connection.tls === undefined ? {} : { tls: clientTlsOptions(connection.tls) }),
      maxRetriesPerRequest: 3,
    },
    dnsLookup: (address, callback) => {
      callback(null, address);
    },
    scaleReads: 'master',
  };
}

function startupNodes(connection: RedisClusterConnection): { host: string; port: number }[] {
  return connection.clusterNodes.map((node) => {
    const at = node.lastIndexOf(':');
    return { host: node.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(node.slice(at + 1)) };
  });
}

class RedisLifecycle implements OnApplicationShutdown {
  constructor(@Inject(REDIS) private readonly redis: Redis) {}

  async onApplicationShutdown(): Promise<void> {
    await this.redis.quit().catch(() => {
      this.redis.disconnect();
    });
  }
}

function where(connection: RedisConnection): string {
  if (isClusterConnection(connection)) return `the Redis Cluster at ${connection.clusterNodes.join(',')}`;
  const { hostname, port } = new URL(connection.url);
  return `Redis at ${hostname}:${port || 6379}`;
}

@Module({})
export class RedisModule {
  static forRoot(connection: RedisConnection): DynamicModule {
    return {
      module: RedisModule,
      global: true,
      providers: [
        {
          provide: REDIS,
          inject: [Readiness],
          useFactory: async (readiness: Readiness): Promise<Redis> => {
            const logger = new Logger('Redis');
            // Connections made with duplicate() (subscribers) keep these options, TLS included.
            // Commands issued in one turn of the event loop go out together (auto-pipelining): one
            // write, one TLS record and one read for many callers, instead of one each. Subscribers
            // turn it off (see pubsub).
            const redis: Redis = isClusterConnection(connection)
              ? new Cluster(startupNodes(connection), {
                  ...redisClusterOptions(connection),
                  lazyConnect: true,
                  enableAutoPipelining: true,
                })
              : new Server(connection.url, {
                  ...redisClientOptions(connection),
                  lazyConnect: true,
                  maxRetriesPerRequest: 3,
                  enableAutoPipelining: true,
                });
            defineScripts(redis);
            let lastError: Error | undefined;
            redis.on('error', (error: Error) => {
              lastError = error;
              logger.warn(error.message);
            });
            redis.on('node error', (error: Error, node: string) => {
              lastError = error;
              logger.warn(`${node}: ${error.message}`);
            });
            try {
              await redis.connect();
            } catch (error) {
              redis.disconnect();
              throw new Error(
                `cannot connect to ${where(connection)}: ${(lastError ?? (error as Error)).message}`,
              );
            }
            readiness.register('redis', async () => {
              await redis.ping();
            });
            return redis;
          },
        },
        RedisLifecycle,
      ],
      exports: [REDIS],
    };
  }
}
