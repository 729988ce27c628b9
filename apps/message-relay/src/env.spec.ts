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
