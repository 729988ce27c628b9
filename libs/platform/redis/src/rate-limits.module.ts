import { Logger, Module, type DynamicModule } from '@nestjs/common';
import { Registry } from 'prom-client';
import { RateLimiter } from './rate-limiter';
import { REDIS, type Redis } from './redis.module';

/**
 * The service's one RateLimiter, on its Redis and counting hits in its
 * metrics registry. `enabled: false` (SOTTO_RATE_LIMITS=off) turns every
 * limit off, and says so as the service starts.
 */
@Module({})
export class RateLimitsModule {
  static forRoot(options: { enabled: boolean }): DynamicModule {
    return {
      module: RateLimitsModule,
      global: true,
      providers: [
        {
          provide: RateLimiter,
          inject: [REDIS, Registry],
          useFactory: (redis: Redis, registry: Registry): RateLimiter => {
            if (!options.enabled) {
              new Logger('RateLimits').warn(
                'SOTTO_RATE_LIMITS=off: every rate limit of this service is off. This is for load tests only; never run a deployment people use like this.',
              );
            }
            return new RateLimiter(redis, { enabled: options.enabled, registry });
          },
        },
      ],
      exports: [RateLimiter],
    };
  }
}
