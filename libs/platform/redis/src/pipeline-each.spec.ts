import { randomUUID } from 'node:crypto';
import { Cluster, Redis as Server } from 'ioredis';
import { parseEnvironment } from '@sotto/platform/config';
import { identityFiles, startPrivateRedisCluster, testInfra, type PrivateRedisCluster } from '@sotto/testing';
import {
  isClusterConnection,
  keySlot,
  pipelineEach,
  redisClientOptions,
  redisClusterOptions,
  redisConnection,
  redisEnv,
  RedisScript,
  type Redis,
} from './index';

// Counts per key, and says which key it counted: a reply given to the wrong item shows.
const COUNT = new RedisScript(`return {KEYS[1], redis.call('INCRBY', KEYS[1], ARGV[1])}`, 1);

/** One COUNT call per key, pipelined as the relay pipelines its mailbox inserts. */
function countEach(redis: Redis, keys: readonly string[], by: number): Promise<[Error | null, unknown][]> {
  COUNT.prepare(redis);
  return pipelineEach(
    redis,
    keys,
    (key) => key,
    (pipeline, key) => {
      COUNT.addTo(pipeline, [key], [by]);
    },
  );
}

/** How many NOSCRIPT replies a server has given so far (INFO errorstats). */
async function noScriptReplies(node: Server): Promise<number> {
  const stats = await node.info('errorstats');
  return Number(/errorstat_NOSCRIPT:count=(\d+)/.exec(stats)?.[1] ?? 0);
}

describe('pipelineEach with scripts the server forgot', () => {
  it('on one server: a pipeline after SCRIPT FLUSH still runs each script, each reply to its item', async () => {
    const url = testInfra().redisUrl;
    const redis = new Server(url, redisClientOptions({ url, tls: identityFiles('message-relay') }));
    try {
      const keys = Array.from({ length: 5 }, (_, i) => `sotto:test:{${randomUUID()}}:${i}`);
      expect(await countEach(redis, keys, 1)).toEqual(keys.map((key) => [null, [key, 1]]));
      await redis.script('FLUSH');
      expect(await countEach(redis, keys, 2)).toEqual(keys.map((key) => [null, [key, 3]]));
    } finally {
      redis.disconnect();
    }
  });

  describe('on a Redis Cluster', () => {
    let cluster: PrivateRedisCluster;
    let redis: Cluster;

    beforeAll(async () => {
      cluster = await startPrivateRedisCluster();
      const connection = redisConnection(parseEnvironment(redisEnv, cluster.env));
      if (!isClusterConnection(connection)) throw new Error('expected a cluster connection');
      redis = new Cluster(
        connection.clusterNodes.map((node) => ({
          host: '127.0.0.1',
          port: Number(node.slice(node.lastIndexOf(':') + 1)),
        })),
        // The client learns of a moved slot only from a reply (MOVED), never from a timer.
        { ...redisClusterOptions(connection), slotsRefreshInterval: 0 },
      );
      await new Promise<void>((resolve) => redis.once('ready', () => resolve()));
    });
    afterAll(async () => {
      redis.disconnect();
      await cluster.stop();
    });

    /** The client's connection to the master it believes serves this key. */
    function masterOf(key: string): Server {
      const address = redis.slots[keySlot(key)]?.[0];
      const node = redis
        .nodes('master')
        .find((each) => `${each.options.host}:${each.options.port}` === address);
      if (node === undefined) throw new Error(`no master known for ${key}`);
      return node;
    }

    it('runs a script redirected (MOVED) to a master that forgot it: sent again alone, as EVAL', async () => {
      const key = `sotto:test:{${randomUUID()}}`;
      const source = masterOf(key);
      const target = redis.nodes('master').find((node) => node !== source);
      if (target === undefined) throw new Error('no second master');
      const targetAddress = `${target.options.host}:${target.options.port}`;
      // The target has run the script over this client's connection (so ioredis sends it EVALSHA
      // from now on), then forgets every script.
      let onTarget = `sotto:test:{${randomUUID()}}`;
      while (masterOf(onTarget) !== target) onTarget = `sotto:test:{${randomUUID()}}`;
      expect(await countEach(redis, [onTarget, key], 1)).toEqual([
        [null, [onTarget, 1]],
        [null, [key, 1]],
      ]);
      await target.script('FLUSH');
      // The key's slot moves to the target; the client still sends it to the source.
      const moved = await cluster.moveSlot(keySlot(key), targetAddress);
      expect(moved).toEqual({
        from: `${source.options.host}:${source.options.port}`,
        to: targetAddress,
        keys: 1,
      });
      expect(masterOf(key)).toBe(source);
      const refusedBefore = await noScriptReplies(target);

      // The source answers MOVED; ioredis re-sends the pipeline's EVALSHA to the target, which
      // answers NOSCRIPT; pipelineEach sends that item again on its own.
      expect(await countEach(redis, [key], 2)).toEqual([[null, [key, 3]]]);
      expect(await noScriptReplies(target)).toBeGreaterThan(refusedBefore);
      expect(masterOf(key)).toBe(target);
    });
  });
});
