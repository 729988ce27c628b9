import { EnvironmentError, parseEnvironment } from '@sotto/platform/config';
import { identityFiles } from '@sotto/testing';
import { kafkaConnection, kafkaEnv } from './index';

function problemsOf(env: Record<string, string>): Record<string, string> {
  try {
    parseEnvironment(kafkaEnv, env);
  } catch (error) {
    if (error instanceof EnvironmentError) {
      return Object.fromEntries(error.problems.map((p) => [p.variable, p.message]));
    }
    throw error;
  }
  return {};
}

describe('kafkaEnv', () => {
  const files = identityFiles('message-relay');
  const brokers = { KAFKA_BROKERS: 'kafka-0:9093,kafka-1:9093' };

  it('reaches the brokers in plaintext by default, and over TLS with KAFKA_SECURITY_PROTOCOL=SSL', () => {
    expect(kafkaConnection(parseEnvironment(kafkaEnv, brokers))).toEqual({
      brokers: ['kafka-0:9093', 'kafka-1:9093'],
    });
    expect(
      kafkaConnection(
        parseEnvironment(kafkaEnv, {
          ...brokers,
          KAFKA_SECURITY_PROTOCOL: 'SSL',
          KAFKA_TLS_CA: files.ca,
          KAFKA_TLS_CERT: files.cert,
          KAFKA_TLS_KEY: files.key,
        }),
      ),
    ).toEqual({
      brokers: ['kafka-0:9093', 'kafka-1:9093'],
      tls: { ca: files.ca, cert: files.cert, key: files.key },
    });
  });

  it('refuses TLS files without SSL, a lone certificate, and SASL', () => {
    expect(problemsOf({ ...brokers, KAFKA_TLS_CA: files.ca })).toEqual({
      KAFKA_TLS_CA: 'is read only over TLS: set KAFKA_SECURITY_PROTOCOL=SSL',
    });
    expect(problemsOf({ ...brokers, KAFKA_SECURITY_PROTOCOL: 'SSL', KAFKA_TLS_CERT: files.cert })).toEqual({
      KAFKA_TLS_CERT: 'is set without KAFKA_TLS_KEY: a client certificate needs its key',
    });
    expect(problemsOf({ ...brokers, KAFKA_SECURITY_PROTOCOL: 'SASL_SSL' })).toEqual({
      KAFKA_SECURITY_PROTOCOL: 'expected PLAINTEXT or SSL (SASL is not supported)',
    });
  });
});
