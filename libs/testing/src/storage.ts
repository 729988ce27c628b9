import { Redis } from 'ioredis';
import { Kafka, logLevel, type KafkaConfig } from 'kafkajs';
import { clientTlsOptions, type StorageServer } from '@sotto/local-infra';
import { operatorTls, postgresUrlWithTls } from '@sotto/stack';
import { testInfra } from './infra';

/**
 * How a test reaches the harness's Kafka, Redis and PostgreSQL itself, to
 * look at what services stored: as the operator, whose certificate the
 * servers take like any of the run's CA. Services reach them with their own.
 */
function overTls(server: StorageServer): boolean {
  return (testInfra().storageTls ?? []).includes(server);
}

/** A client of the harness's Redis (or of `url`, e.g. a proxy in front of it). */
export function testRedis(url: string = testInfra().redisUrl): Redis {
  return new Redis(url, overTls('redis') ? { tls: clientTlsOptions(operatorTls(testInfra().tls)) } : {});
}

/** A client of the harness's Kafka. */
export function testKafka(config: Omit<KafkaConfig, 'brokers' | 'ssl'>): Kafka {
  return new Kafka({
    logLevel: logLevel.NOTHING,
    ...config,
    brokers: [...testInfra().kafkaBrokers],
    ...(overTls('kafka') ? { ssl: clientTlsOptions(operatorTls(testInfra().tls)) } : {}),
  });
}

/**
 * A database of the harness's PostgreSQL (the run's own by default) as a URL
 * that pg and psql take whole: with the operator's certificate and the CA in
 * it, libpq-style, when the server asks for TLS.
 */
export function operatorDatabaseUrl(url: string = testInfra().databaseUrl): string {
  return overTls('postgres') ? postgresUrlWithTls(url, operatorTls(testInfra().tls)) : url;
}
