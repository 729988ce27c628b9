import { Test } from '@nestjs/testing';
import type { Redis } from 'ioredis';
import { Readiness, ReadinessModule } from '@sotto/platform/health';
import { testInfra } from '@sotto/testing';
import { REDIS, RedisModule } from './index';

describe('RedisModule', () => {
  it('connects, registers a readiness check, and closes on shutdown', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [ReadinessModule, RedisModule.forRoot({ url: testInfra().redisUrl })],
    }).compile();
    moduleRef.enableShutdownHooks();
    const redis = moduleRef.get<Redis>(REDIS);
    expect(await redis.ping()).toBe('PONG');
    expect(await moduleRef.get(Readiness).report()).toEqual({ ready: true, checks: { redis: 'ok' } });
    const ended = new Promise<void>((resolve) => redis.once('end', () => resolve()));
    await moduleRef.close();
    await ended;
    expect(redis.status).toBe('end');
  });

  it('fails to start when Redis cannot be reached', async () => {
    const building = Test.createTestingModule({
      imports: [ReadinessModule, RedisModule.forRoot({ url: 'redis://127.0.0.1:1' })],
    }).compile();
    await expect(building).rejects.toThrow(
      'cannot connect to Redis at 127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1',
    );
  });
});
