export { RedisModule, REDIS } from './redis.module';
export { RateLimiter, type RateLimit, type RateLimitResult } from './rate-limiter';
export type { Redis } from 'ioredis';
