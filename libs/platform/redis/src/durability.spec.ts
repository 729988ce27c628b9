import type { Redis } from 'ioredis';
import { testRedis } from '@sotto/testing';
import { hasWaitAof, WriteDurability } from './durability';

describe('hasWaitAof', () => {
  it('is true from Redis 7.2 on, when WAITAOF came', () => {
    expect(['7.2.0', '7.2.4', '7.4.1', '8.0.0'].map(hasWaitAof)).toEqual([true, true, true, true]);
    expect(['7.0.15', '6.2.14', '7.1.99', 'garbage', ''].map(hasWaitAof)).toEqual([
      false,
      false,
      false,
      false,
      false,
    ]);
  });
});

/** The harness's Redis is one server with no replicas: no write of it can reach a replica. */
describe('WriteDurability on a server without replicas', () => {
  let redis: Redis;

  beforeAll(() => {
    redis = testRedis();
  });

  afterAll(() => redis.quit());

  it('asks nothing under none', async () => {
    const durability = new WriteDurability(redis, { level: 'none', replicas: 1, timeoutMs: 10 });
    expect(await durability.confirm(['durability:spec:a'])).toEqual({
      durable: true,
      commands: {},
      shortfalls: [],
    });
  });

  it('says a write is not durable when WAIT finds fewer replicas than the policy needs', async () => {
    const durability = new WriteDurability(redis, { level: 'replica', replicas: 1, timeoutMs: 50 });
    await redis.set('durability:spec:b', '1');
    const started = Date.now();
    const outcome = await durability.confirm(['durability:spec:b']);
    expect(Date.now() - started).toBeGreaterThanOrEqual(40);
    expect(outcome).toEqual({
      durable: false,
      commands: { redis: 'WAIT' },
      shortfalls: [{ node: 'redis', replicas: 0 }],
    });
  });

  it('uses WAITAOF where the server has it and says once when it does not', async () => {
    const missing: string[] = [];
    const durability = new WriteDurability(
      redis,
      { level: 'replica-aof', replicas: 1, timeoutMs: 20 },
      (node, version) => missing.push(`${node} ${version}`),
    );
    const version = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? '';
    await redis.set('durability:spec:c', '1');
    const first = await durability.confirm(['durability:spec:c']);
    const second = await durability.confirm(['durability:spec:c']);
    const command = hasWaitAof(version) ? 'WAITAOF' : 'WAIT';
    expect([first.commands, second.commands]).toEqual([{ redis: command }, { redis: command }]);
    expect(first.durable).toBe(false);
    expect(missing).toEqual(hasWaitAof(version) ? [] : [`redis ${version}`]);
  });
});
