import { z } from 'zod';
import { checkClientTls, clientTlsShape, clientTlsVariables, commaList } from '@sotto/platform/config';
import type { KafkaConnection } from './kafka.module';

const TLS = clientTlsVariables('KAFKA');

/**
 * The environment of a Kafka client: KAFKA_BROKERS, and with
 * KAFKA_SECURITY_PROTOCOL=SSL the CA the brokers' certificates must chain to
 * and the client's own certificate, for brokers that ask for one (mutual TLS;
 * SASL is not supported yet). Compose it into a service's schema with
 * `.and(kafkaEnv)`.
 */
export const kafkaEnv = z
  .object({
    /** Bootstrap brokers, comma-separated host:port. */
    KAFKA_BROKERS: commaList(),
    /** As Kafka's own security.protocol: PLAINTEXT, or SSL for TLS with the brokers' certificates verified. */
    KAFKA_SECURITY_PROTOCOL: z
      .enum(['PLAINTEXT', 'SSL'], { message: 'expected PLAINTEXT or SSL (SASL is not supported)' })
      .default('PLAINTEXT'),
    /** KAFKA_TLS_CA (unset: the system's roots), KAFKA_TLS_CERT and KAFKA_TLS_KEY. */
    ...clientTlsShape('KAFKA'),
  })
  .superRefine((env, context) => {
    const on = env.KAFKA_SECURITY_PROTOCOL === 'SSL';
    checkClientTls(env, TLS, { on, turnOn: 'set KAFKA_SECURITY_PROTOCOL=SSL' }, context);
  });

export type KafkaEnv = z.output<typeof kafkaEnv>;

/** The brokers the environment names, and what the client trusts and presents over SSL. */
export function kafkaConnection(env: KafkaEnv): KafkaConnection {
  if (env.KAFKA_SECURITY_PROTOCOL !== 'SSL') return { brokers: env.KAFKA_BROKERS };
  return {
    brokers: env.KAFKA_BROKERS,
    tls: { ca: env.KAFKA_TLS_CA, cert: env.KAFKA_TLS_CERT, key: env.KAFKA_TLS_KEY },
  };
}
