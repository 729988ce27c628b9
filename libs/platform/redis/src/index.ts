export { RedisModule, REDIS } from './redis.module';
export type { Redis } from 'ioredis';
