import { EnvironmentError, parseEnvironment } from '@sotto/platform/config';
import { identityFiles } from '@sotto/testing';
import { relayEnv } from './env';

describe('relayEnv: MAILBOX_DURABILITY', () => {
  const files = identityFiles('message-relay');
  const base = {
    GRPC_TLS_CA: files.ca,
    GRPC_TLS_CERT: files.cert,
    GRPC_TLS_KEY: files.key,
    KAFKA_BROKERS: 'kafka:9092',
    REDIS_URL: 'redis://cache:6379',
  };

  function problemsOf(env: Record<string, string>): Record<string, string> {
    try {
      parseEnvironment(relayEnv, { ...base, ...env });
    } catch (error) {
      if (error instanceof EnvironmentError) {
        return Object.fromEntries(error.problems.map((p) => [p.variable, p.message]));
      }
      throw error;
    }
    return {};
  }

  it('commits as soon as Redis answered unless told to wait, for one replica, up to a second', () => {
    const env = parseEnvironment(relayEnv, base);
    expect([
      env.MAILBOX_DURABILITY,
      env.MAILBOX_DURABILITY_REPLICAS,
      env.MAILBOX_DURABILITY_TIMEOUT_MS,
    ]).toEqual(['none', 1, 1000]);
    for (const level of ['replica', 'replica-aof'] as const) {
      expect(parseEnvironment(relayEnv, { ...base, MAILBOX_DURABILITY: level }).MAILBOX_DURABILITY).toBe(
        level,
      );
    }
  });

  it('refuses a level it does not know, no replicas and no timeout, naming each variable', () => {
    expect(
      problemsOf({
        MAILBOX_DURABILITY: 'fsync',
        MAILBOX_DURABILITY_REPLICAS: '0',
        MAILBOX_DURABILITY_TIMEOUT_MS: '-5',
      }),
    ).toEqual({
      MAILBOX_DURABILITY: 'expected one of none, replica, replica-aof',
      MAILBOX_DURABILITY_REPLICAS: 'expected a number greater than 0',
      MAILBOX_DURABILITY_TIMEOUT_MS: 'expected a number greater than 0',
    });
    expect(problemsOf({ MAILBOX_DURABILITY: 'REPLICA' })).toEqual({
      MAILBOX_DURABILITY: 'expected one of none, replica, replica-aof',
    });
  });
});

describe('relayEnv: MAILBOX_ROOM_CACHE_MS', () => {
  const files = identityFiles('message-relay');
  const base = {
    GRPC_TLS_CA: files.ca,
    GRPC_TLS_CERT: files.cert,
    GRPC_TLS_KEY: files.key,
    KAFKA_BROKERS: 'kafka:9092',
    REDIS_URL: 'redis://cache:6379',
  };

  it('trusts a mailbox reading for a second by default, for at most 100,000 mailboxes; 0 turns it off', () => {
    const env = parseEnvironment(relayEnv, base);
    expect([env.MAILBOX_ROOM_CACHE_MS, env.MAILBOX_ROOM_CACHE_MAX_MAILBOXES]).toEqual([1000, 100_000]);
    expect(parseEnvironment(relayEnv, { ...base, MAILBOX_ROOM_CACHE_MS: '0' }).MAILBOX_ROOM_CACHE_MS).toBe(0);
  });

  it('refuses a negative or fractional time and no room for any mailbox, naming each variable', () => {
    const problemsOf = (env: Record<string, string>): Record<string, string> => {
      try {
        parseEnvironment(relayEnv, { ...base, ...env });
      } catch (error) {
        if (error instanceof EnvironmentError) {
          return Object.fromEntries(error.problems.map((p) => [p.variable, p.message]));
        }
        throw error;
      }
      return {};
    };
    expect(problemsOf({ MAILBOX_ROOM_CACHE_MS: '-1' })).toEqual({
      MAILBOX_ROOM_CACHE_MS: 'expected 0 or more',
    });
    expect(problemsOf({ MAILBOX_ROOM_CACHE_MS: '1.5' })).toEqual({
      MAILBOX_ROOM_CACHE_MS: 'expected a whole number',
    });
    expect(problemsOf({ MAILBOX_ROOM_CACHE_MS: 'soon' })).toEqual({
      MAILBOX_ROOM_CACHE_MS: 'expected a whole number',
    });
    expect(Object.keys(problemsOf({ MAILBOX_ROOM_CACHE_MAX_MAILBOXES: '0' }))).toEqual([
      'MAILBOX_ROOM_CACHE_MAX_MAILBOXES',
    ]);
  });
});
