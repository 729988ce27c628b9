import { EnvironmentError, parseEnvironment } from '@sotto/platform/config';
import { identityFiles, makeSenderCertificateKeys, senderCertificateVariables } from '@sotto/testing';
import { gatewayEnv } from './env';

const files = identityFiles('gateway');
const base = {
  GRPC_TLS_CA: files.ca,
  GRPC_TLS_CERT: files.cert,
  GRPC_TLS_KEY: files.key,
  REDIS_URL: 'redis://cache:6379',
  ...senderCertificateVariables(makeSenderCertificateKeys()),
};

function problemsOf(env: Record<string, string>): Record<string, string> {
  try {
    parseEnvironment(gatewayEnv, { ...base, ...env });
  } catch (error) {
    if (error instanceof EnvironmentError) {
      return Object.fromEntries(error.problems.map((p) => [p.variable, p.message]));
    }
    throw error;
  }
  return {};
}

describe('gatewayEnv: RELAY_SEND_TIMEOUT_MS', () => {
  it('gives the relay 10 s to answer a batch of Sends unless told otherwise', () => {
    expect(parseEnvironment(gatewayEnv, base).RELAY_SEND_TIMEOUT_MS).toBe(10_000);
    expect(
      parseEnvironment(gatewayEnv, { ...base, RELAY_SEND_TIMEOUT_MS: '1500' }).RELAY_SEND_TIMEOUT_MS,
    ).toBe(1500);
  });

  it.each([
    ['0', 'expected a number greater than 0'],
    ['-5', 'expected a number greater than 0'],
    ['2.5', 'expected a whole number'],
    ['10s', 'expected a whole number'],
    ['300001', 'expected at most 300000'],
  ])('refuses %s, naming the variable', (value, message) => {
    expect(problemsOf({ RELAY_SEND_TIMEOUT_MS: value })).toEqual({ RELAY_SEND_TIMEOUT_MS: message });
  });
});

describe('gatewayEnv: batch calls to the relay', () => {
  it('keeps 4 batches of Sends and reads in flight and 1 of acknowledgements unless told otherwise', () => {
    const env = parseEnvironment(gatewayEnv, base);
    expect([env.RELAY_BATCH_CONCURRENCY, env.RELAY_ACK_BATCH_CONCURRENCY]).toEqual([4, 1]);
    expect(
      parseEnvironment(gatewayEnv, { ...base, RELAY_ACK_BATCH_CONCURRENCY: '8' }).RELAY_ACK_BATCH_CONCURRENCY,
    ).toBe(8);
  });

  it.each([
    ['0', 'expected a number greater than 0'],
    ['1.5', 'expected a whole number'],
    ['65', 'expected at most 64'],
  ])('refuses %s acknowledgement batches in flight, naming the variable', (value, message) => {
    expect(problemsOf({ RELAY_ACK_BATCH_CONCURRENCY: value })).toEqual({
      RELAY_ACK_BATCH_CONCURRENCY: message,
    });
  });
});

describe('gatewayEnv: the unidentified-access cache', () => {
  it('caches for 30 s and at most 100,000 accounts unless told otherwise, and 0 turns it off', () => {
    const defaults = parseEnvironment(gatewayEnv, base);
    expect([
      defaults.UNIDENTIFIED_ACCESS_CACHE_TTL_MS,
      defaults.UNIDENTIFIED_ACCESS_CACHE_MAX_ACCOUNTS,
    ]).toEqual([30_000, 100_000]);
    expect(
      parseEnvironment(gatewayEnv, { ...base, UNIDENTIFIED_ACCESS_CACHE_TTL_MS: '0' })
        .UNIDENTIFIED_ACCESS_CACHE_TTL_MS,
    ).toBe(0);
  });

  it('refuses a time to live below 0 and no room at all, naming the variables', () => {
    expect(
      problemsOf({ UNIDENTIFIED_ACCESS_CACHE_TTL_MS: '-1', UNIDENTIFIED_ACCESS_CACHE_MAX_ACCOUNTS: '0' }),
    ).toEqual({
      UNIDENTIFIED_ACCESS_CACHE_TTL_MS: 'expected 0 or more',
      UNIDENTIFIED_ACCESS_CACHE_MAX_ACCOUNTS: 'expected a number greater than 0',
    });
  });
});

describe('gatewayEnv: GATEWAY_HEAP_GROWING_PERCENT', () => {
  it("leaves the heap's growth to V8 unless told otherwise, and takes a percentage up to 300", () => {
    expect(parseEnvironment(gatewayEnv, base).GATEWAY_HEAP_GROWING_PERCENT).toBe(0);
    expect(
      parseEnvironment(gatewayEnv, { ...base, GATEWAY_HEAP_GROWING_PERCENT: '25' })
        .GATEWAY_HEAP_GROWING_PERCENT,
    ).toBe(25);
  });

  it.each([
    ['-1', 'expected 0 or more'],
    ['12.5', 'expected a whole number'],
    ['25%', 'expected a whole number'],
    ['301', 'expected at most 300'],
  ])('refuses %s, naming the variable', (value, message) => {
    expect(problemsOf({ GATEWAY_HEAP_GROWING_PERCENT: value })).toEqual({
      GATEWAY_HEAP_GROWING_PERCENT: message,
    });
  });
});

describe('gatewayEnv: GATEWAY_HEAP_TRIM_MIB and GATEWAY_HEAP_TRIM_QUIET_MS', () => {
  it('trims past 64 MiB of growth after 10 s of quiet unless told otherwise; 0 MiB is never', () => {
    const env = parseEnvironment(gatewayEnv, base);
    expect([env.GATEWAY_HEAP_TRIM_MIB, env.GATEWAY_HEAP_TRIM_QUIET_MS]).toEqual([64, 10_000]);
    expect(parseEnvironment(gatewayEnv, { ...base, GATEWAY_HEAP_TRIM_MIB: '0' }).GATEWAY_HEAP_TRIM_MIB).toBe(
      0,
    );
  });

  it.each([
    ['GATEWAY_HEAP_TRIM_MIB', '-1', 'expected 0 or more'],
    ['GATEWAY_HEAP_TRIM_MIB', '64MiB', 'expected a whole number'],
    ['GATEWAY_HEAP_TRIM_QUIET_MS', '0', 'expected a number greater than 0'],
    ['GATEWAY_HEAP_TRIM_QUIET_MS', '1.5', 'expected a whole number'],
    ['GATEWAY_HEAP_TRIM_QUIET_MS', '999', 'expected at least 1000'],
    ['GATEWAY_HEAP_TRIM_QUIET_MS', '600001', 'expected at most 600000'],
  ])('refuses %s=%s, naming the variable', (variable, value, message) => {
    expect(problemsOf({ [variable]: value })).toEqual({ [variable]: message });
  });
});
