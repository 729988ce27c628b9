import { EnvironmentError, parseEnvironment } from '@sotto/platform/config';
import { identityFiles } from '@sotto/testing';
import { redisConnection, redisEnv } from './index';

function problemsOf(env: Record<string, string>): Record<string, string> {
  try {
    parseEnvironment(redisEnv, env);
  } catch (error) {
    if (error instanceof EnvironmentError) {
      return Object.fromEntries(error.problems.map((p) => [p.variable, p.message]));
    }
    throw error;
  }
  return {};
}

describe('redisEnv', () => {
  const files = identityFiles('presence');
  const tls = { REDIS_TLS_CA: files.ca, REDIS_TLS_CERT: files.cert, REDIS_TLS_KEY: files.key };

  it('reaches redis:// in plaintext and rediss:// over TLS with the files named', () => {
    expect(redisConnection(parseEnvironment(redisEnv, { REDIS_URL: 'redis://cache:6379' }))).toEqual({
      url: 'redis://cache:6379',
    });
    expect(redisConnection(parseEnvironment(redisEnv, { REDIS_URL: 'rediss://cache:6380', ...tls }))).toEqual(
      {
        url: 'rediss://cache:6380',
        tls: { ca: files.ca, cert: files.cert, key: files.key },
      },
    );
    // A public CA's certificate: the system's roots.
    expect(redisConnection(parseEnvironment(redisEnv, { REDIS_URL: 'rediss://cache.example:6380' }))).toEqual(
      {
        url: 'rediss://cache.example:6380',
        tls: { ca: undefined, cert: undefined, key: undefined },
      },
    );
  });

  it('refuses TLS files for a plaintext URL, rather than ignoring them', () => {
    expect(problemsOf({ REDIS_URL: 'redis://cache:6379', REDIS_TLS_CA: files.ca })).toEqual({
      REDIS_TLS_CA: 'is read only over TLS: make REDIS_URL rediss://',
    });
  });

  it('wants a certificate and its key together, and readable PEM files', () => {
    expect(problemsOf({ REDIS_URL: 'rediss://cache:6380', REDIS_TLS_CERT: files.cert })).toEqual({
      REDIS_TLS_CERT: 'is set without REDIS_TLS_KEY: a client certificate needs its key',
    });
    expect(problemsOf({ REDIS_URL: 'rediss://cache:6380', REDIS_TLS_KEY: files.key })).toEqual({
      REDIS_TLS_KEY: 'is set without REDIS_TLS_CERT: a key needs its certificate',
    });
    expect(problemsOf({ REDIS_URL: 'rediss://cache:6380', REDIS_TLS_CA: '/nowhere/ca.crt' })).toEqual({
      REDIS_TLS_CA: 'expected the path of a readable PEM file',
    });
  });
});

describe('redisEnv for a Redis Cluster', () => {
  const files = identityFiles('presence');
  const tls = { REDIS_TLS_CA: files.ca, REDIS_TLS_CERT: files.cert, REDIS_TLS_KEY: files.key };

  it('reaches the nodes of REDIS_CLUSTER_NODES, over TLS with REDIS_CLUSTER_TLS=on and the files named', () => {
    expect(
      redisConnection(parseEnvironment(redisEnv, { REDIS_CLUSTER_NODES: 'redis-0:6379, redis-1:6379' })),
    ).toEqual({ clusterNodes: ['redis-0:6379', 'redis-1:6379'] });
    expect(
      redisConnection(
        parseEnvironment(redisEnv, { REDIS_CLUSTER_NODES: 'redis-0:6379', REDIS_CLUSTER_TLS: 'on', ...tls }),
      ),
    ).toEqual({ clusterNodes: ['redis-0:6379'], tls: { ca: files.ca, cert: files.cert, key: files.key } });
  });

  it('takes one server or one cluster: neither, or both, is a start-up error naming both variables', () => {
    expect(problemsOf({})).toEqual({
      'REDIS_URL or REDIS_CLUSTER_NODES': 'is required',
    });
    expect(problemsOf({ REDIS_URL: 'redis://cache:6379', REDIS_CLUSTER_NODES: 'redis-0:6379' })).toEqual({
      REDIS_CLUSTER_NODES:
        'is set with REDIS_URL: set REDIS_URL for one Redis server or REDIS_CLUSTER_NODES for a Redis Cluster, not both',
    });
  });

  it('refuses a node list that is not host:port, and TLS files or switches that would be ignored', () => {
    expect(problemsOf({ REDIS_CLUSTER_NODES: 'redis://redis-0:6379' })).toEqual({
      REDIS_CLUSTER_NODES: 'expected host:port, such as 127.0.0.1:7400',
    });
    expect(problemsOf({ REDIS_CLUSTER_NODES: 'redis-0:6379', REDIS_TLS_CA: files.ca })).toEqual({
      REDIS_TLS_CA: 'is read only over TLS: set REDIS_CLUSTER_TLS=on',
    });
    expect(problemsOf({ REDIS_URL: 'rediss://cache:6380', REDIS_CLUSTER_TLS: 'on' })).toEqual({
      REDIS_CLUSTER_TLS: 'is read only with REDIS_CLUSTER_NODES: for one server, make REDIS_URL rediss://',
    });
    expect(problemsOf({ REDIS_CLUSTER_NODES: 'redis-0:6379', REDIS_CLUSTER_TLS: 'yes' })).toEqual({
      REDIS_CLUSTER_TLS: 'expected on or off',
    });
  });
});
