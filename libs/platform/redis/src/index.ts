export { RedisModule, REDIS } from './redis.module';
export { RateLimiter, type RateLimit, type RateLimitResult, type RateLimiterOptions } from './rate-limiter';
export { RateLimitsModule } from './rate-limits.module';
export type { Redis } from 'ioredis';
