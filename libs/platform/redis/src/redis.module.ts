import { Inject, Logger, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { Redis } from 'ioredis';
import { Readiness } from '@sotto/platform/health';

export const REDIS = Symbol('REDIS');

class RedisLifecycle implements OnApplicationShutdown {
  constructor(@Inject(REDIS) private readonly redis: Redis) {}

  async onApplicationShutdown(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

@Module({})
export class RedisModule {
  static forRoot(options: { url: string }): DynamicModule {
    return {
      module: RedisModule,
      global: true,
      providers: [
        {
          provide: REDIS,
          inject: [Readiness],
          useFactory: async (readiness: Readiness): Promise<Redis> => {
            const logger = new Logger('Redis');
            const redis = new Redis(options.url, { lazyConnect: true, maxRetriesPerRequest: 3 });
            let lastError: Error | undefined;
            redis.on('error', (error: Error) => {
              lastError = error;
              logger.warn(error.message);
            });
            try {
              await redis.connect();
            } catch (error) {
              redis.disconnect();
              const { hostname, port } = new URL(options.url);
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
