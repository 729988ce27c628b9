export {
  RedisModule,
  REDIS,
  isClusterConnection,
  redisClientOptions,
  redisClusterOptions,
  type Redis,
  type RedisClusterConnection,
  type RedisConnection,
  type RedisServerConnection,
} from './redis.module';
export { redisEnv, redisConnection, type RedisEnv } from './redis-env';
export { RateLimiter, type RateLimit, type RateLimitResult, type RateLimiterOptions } from './rate-limiter';
export { RateLimitsModule } from './rate-limits.module';
export { groupBySlot, keySlot, pipelineEach, SLOTS, whileAvailable } from './slots';
export { publish, publishEach, subscribe, type SubscribeOptions, type Subscription } from './pubsub';
export { InvalidatedCache, type CacheSource, type InvalidatedCacheOptions } from './invalidated-cache';
export { defineScripts, RedisScript, type ScriptArgument } from './scripts';
export {
  hasWaitAof,
  WRITE_DURABILITY_LEVELS,
  WriteDurability,
  type DurabilityOutcome,
  type DurabilityShortfall,
  type WriteDurabilityLevel,
  type WriteDurabilityPolicy,
} from './durability';
export {
  locateHolders,
  publishToGateways,
  publishToHolders,
  type GatewayDevice,
  type GatewayEventKind,
  type HeldStreamEvent,
} from './gateway-events';
