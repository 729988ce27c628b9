export { RedisModule, REDIS, redisClientOptions, type RedisConnection } from './redis.module';
export { redisEnv, redisConnection, type RedisEnv } from './redis-env';
export { RateLimiter, type RateLimit, type RateLimitResult, type RateLimiterOptions } from './rate-limiter';
export { RateLimitsModule } from './rate-limits.module';
export type { Redis } from 'ioredis';
