export { RedisModule, REDIS, redisClientOptions, type RedisConnection } from './redis.module';
export { redisEnv, redisConnection, type RedisEnv } from './redis-env';
export { RateLimiter, type RateLimit, type RateLimitResult } from './rate-limiter';
export type { Redis } from 'ioredis';
