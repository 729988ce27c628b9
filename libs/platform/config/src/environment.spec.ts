import { z } from 'zod';
import {
  EnvironmentError,
  commaList,
  hostPort,
  logLevel,
  nonNegativeInt,
  parseEnvironment,
  positiveInt,
  url,
} from './index';

const schema = z.object({
  GRPC_ADDR: hostPort().default('127.0.0.1:7401'),
  DATABASE_URL: url(['postgres', 'postgresql']),
  KAFKA_BROKERS: commaList(),
  POOL_SIZE: positiveInt().default(10),
  CACHE_TTL_MS: nonNegativeInt().default(1000),
  LOG_LEVEL: logLevel().default('info'),
});

function problemsOf(env: Record<string, string>): Record<string, string> {
  try {
    parseEnvironment(schema, env);
  } catch (error) {
    if (error instanceof EnvironmentError) {
      return Object.fromEntries(error.problems.map((p) => [p.variable, p.message]));
    }
    throw error;
  }
  throw new Error('expected the environment to be refused');
}

describe('parseEnvironment', () => {
  it('applies defaults and parses lists', () => {
    expect(
      parseEnvironment(schema, {
        DATABASE_URL: 'postgres://u@127.0.0.1:5432/db',
        KAFKA_BROKERS: '127.0.0.1:9092, 127.0.0.1:9093',
        POOL_SIZE: '',
      }),
    ).toEqual({
      GRPC_ADDR: '127.0.0.1:7401',
      DATABASE_URL: 'postgres://u@127.0.0.1:5432/db',
      KAFKA_BROKERS: ['127.0.0.1:9092', '127.0.0.1:9093'],
      POOL_SIZE: 10,
      CACHE_TTL_MS: 1000,
      LOG_LEVEL: 'info',
    });
  });

  it('takes 0 where a setting may be off, and refuses what is not a whole number of 0 or more', () => {
    const base = { DATABASE_URL: 'postgres://u@127.0.0.1:5432/db', KAFKA_BROKERS: '127.0.0.1:9092' };
    expect(parseEnvironment(schema, { ...base, CACHE_TTL_MS: '0' }).CACHE_TTL_MS).toBe(0);
    expect(problemsOf({ ...base, CACHE_TTL_MS: '-1' })).toEqual({ CACHE_TTL_MS: 'expected 0 or more' });
    expect(problemsOf({ ...base, CACHE_TTL_MS: '1.5' })).toEqual({ CACHE_TTL_MS: 'expected a whole number' });
    expect(problemsOf({ ...base, CACHE_TTL_MS: '5s' })).toEqual({ CACHE_TTL_MS: 'expected a whole number' });
  });

  it('names every bad variable at once', () => {
    expect(
      problemsOf({
        GRPC_ADDR: 'localhost',
        KAFKA_BROKERS: '127.0.0.1:99999',
        POOL_SIZE: '-3',
        LOG_LEVEL: 'loud',
      }),
    ).toEqual({
      GRPC_ADDR: 'expected host:port, such as 127.0.0.1:7400',
      DATABASE_URL: 'is required',
      KAFKA_BROKERS: 'expected host:port, such as 127.0.0.1:7400',
      POOL_SIZE: 'expected a number greater than 0',
      LOG_LEVEL: 'expected one of fatal, error, warn, info, debug, trace, silent',
    });
  });

  it('refuses a URL of the wrong kind without echoing it', () => {
    const secret = 'mysql://admin:hunter2@db:3306/x';
    let message = '';
    try {
      parseEnvironment(schema, { DATABASE_URL: secret, KAFKA_BROKERS: '127.0.0.1:9092' });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('DATABASE_URL: expected a URL starting with postgres:// or postgresql://');
    expect(message).not.toContain('hunter2');
  });
});
