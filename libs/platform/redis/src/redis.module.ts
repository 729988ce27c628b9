import { Inject, Logger, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { Redis, type RedisOptions } from 'ioredis';
import { Readiness } from '@sotto/platform/health';
import { clientTlsOptions, type ClientTlsFiles } from '@sotto/platform/tls';

export const REDIS = Symbol('REDIS');

/** A Redis server: its URL and, for rediss://, what the client trusts and presents. */
export interface RedisConnection {
  /** redis://host:port, or rediss://host:port for TLS. */
  readonly url: string;
  /** For rediss:// only; unset CA means the system's roots. */
  readonly tls?: ClientTlsFiles;
}

/**
 * ioredis options for a connection: over rediss:// the server's certificate
 * must chain to the CA and name the host in the URL, and the client presents
 * its certificate if it has one. A redis:// URL with TLS files is refused,
 * rather than sent in plaintext to a server someone meant to verify.
 */
export function redisClientOptions(connection: RedisConnection): RedisOptions {
  const tls = connection.url.startsWith('rediss:');
  if (!tls && connection.tls !== undefined) {
    throw new Error('TLS settings for a redis:// URL: use rediss:// to reach Redis over TLS');
  }
  return tls ? { tls: clientTlsOptions(connection.tls ?? {}) } : {};
}

class RedisLifecycle implements OnApplicationShutdown {
  constructor(@Inject(REDIS) private readonly redis: Redis) {}

  async onApplicationShutdown(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
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
            const redis = new Redis(connection.url, {
              ...redisClientOptions(connection),
              lazyConnect: true,
              maxRetriesPerRequest: 3,
            });
            let lastError: Error | undefined;
            redis.on('error', (error: Error) => {
              lastError = error;
              logger.warn(error.message);
            });
            try {
              await redis.connect();
            } catch (error) {
              redis.disconnect();
              const { hostname, port } = new URL(connection.url);
              throw new Error(
                `cannot connect to Redis at ${hostname}:${port || 6379}: ${(lastError ?? (error as Error)).message}`,
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
