import { randomUUID } from 'node:crypto';
import { Cluster, Redis as Server } from 'ioredis';
import { parseEnvironment } from '@sotto/platform/config';
import { identityFiles, startPrivateRedisCluster, testInfra, type PrivateRedisCluster } from '@sotto/testing';
import {
  isClusterConnection,
  RedisScript,
  redisClientOptions,
  redisClusterOptions,
  redisConnection,
  redisEnv,
  type Redis,
} from './index';

// Scripts of this spec alone, made at import like every service's: no client has them defined yet.
// Each answers what it was given and what it did, so a reply handed to the wrong caller shows.
const ECHO = new RedisScript(`return {'echo', KEYS[1], ARGV[1]}`, 1);
const COUNT = new RedisScript(`return {'count', redis.call('INCRBY', KEYS[1], ARGV[1])}`, 1);
const APPEND = new RedisScript(`return {'append', redis.call('APPEND', KEYS[1], ARGV[1])}`, 1);
const BYTES = new RedisScript(`return redis.call('GET', KEYS[1])`, 1);

/** A client as services make one (auto-pipelining on), but without defining any script on it. */
function unpreparedServer(): Server {
  const url = testInfra().redisUrl;
  return new Server(url, {
    ...redisClientOptions({ url, tls: identityFiles('message-relay') }),
    enableAutoPipelining: true,
  });
}

/**
 * Many callers in one turn of the event loop, as a busy service has them: plain commands and the
 * first call of each script on this client, interleaved, all joining the same auto-pipeline. Every
 * caller must get its own reply.
 */
async function expectOwnRepliesAmongCommands(redis: Redis): Promise<void> {
  const tag = randomUUID();
  const key = (name: string): string => `sotto:test:{${tag}}:${name}`;
  const binary = Buffer.from([0x00, 0xff, 0x10, 0x80]);
  await redis.set(key('bytes'), binary);
  // The commands below are issued without awaiting one another.
  const replies = await Promise.all([
    redis.set(key('plain'), 'one'),
    ECHO.run(redis, [key('echo')], ['hello']),
    redis.get(key('plain')),
    COUNT.run(redis, [key('count')], [5]),
    redis.incrby(key('counter'), 7),
    APPEND.run(redis, [key('append')], ['abc']),
    BYTES.runBuffer(redis, [key('bytes')], []),
    COUNT.run(redis, [key('count')], [2]),
    redis.get(key('plain')),
    ECHO.run(redis, [key('echo')], ['again']),
  ]);
  expect(replies).toEqual([
    'OK',
    ['echo', key('echo'), 'hello'],
    'one',
    ['count', 5],
    7,
    ['append', 3],
    binary,
    ['count', 7],
    'one',
    ['echo', key('echo'), 'again'],
  ]);
}

describe('RedisScript on a client that never defined its scripts', () => {
  it('answers every caller with its own reply when scripts are first called among other commands', async () => {
    const redis = unpreparedServer();
    try {
      await redis.ping();
      await expectOwnRepliesAmongCommands(redis);
      // And again, once each script is known to the server.
      await expectOwnRepliesAmongCommands(redis);
    } finally {
      redis.disconnect();
    }
  });

  it('runs a script again after the server forgot every script (SCRIPT FLUSH)', async () => {
    const redis = unpreparedServer();
    try {
      const key = `sotto:test:{${randomUUID()}}`;
      expect(await COUNT.run(redis, [key], [1])).toEqual(['count', 1]);
      await redis.script('FLUSH');
      expect(await COUNT.run(redis, [key], [1])).toEqual(['count', 2]);
    } finally {
      redis.disconnect();
    }
  });

  it('refuses a call with the wrong number of keys, and runs nothing', async () => {
    const redis = unpreparedServer();
    try {
      const key = `sotto:test:{${randomUUID()}}`;
      expect(() => COUNT.run(redis, [key, key], [1])).toThrow('the script takes 1 keys, given 2');
      expect(await redis.exists(key)).toBe(0);
    } finally {
      redis.disconnect();
    }
  });

  describe('on a Redis Cluster', () => {
    let cluster: PrivateRedisCluster;
    beforeAll(async () => {
      cluster = await startPrivateRedisCluster();
    });
    afterAll(async () => {
      await cluster.stop();
    });

    it('answers every caller with its own reply, on every master', async () => {
      const connection = redisConnection(parseEnvironment(redisEnv, cluster.env));
      if (!isClusterConnection(connection)) throw new Error('expected a cluster connection');
      const redis = new Cluster(
        connection.clusterNodes.map((node) => ({
          host: '127.0.0.1',
          port: Number(node.slice(node.lastIndexOf(':') + 1)),
        })),
        { ...redisClusterOptions(connection), enableAutoPipelining: true },
      );
      try {
        // Several hash tags, so the calls spread over the masters' auto-pipelines.
        await Promise.all(Array.from({ length: 6 }, () => expectOwnRepliesAmongCommands(redis)));
      } finally {
        redis.disconnect();
      }
    });
  });
});
