export { testInfra, INFRA_ENV } from './infra';
export { createTestDatabase } from './database';
export { createTestHsmToken } from './hsm';
export { listServicesByReflection } from './reflection-client';
export { describeServiceBoot, runServiceToExit } from './service-boot';
export {
  createTestCluster,
  startGatewayFor,
  startPlatformOnPrivateRedis,
  startTestService,
  startTestPlatform,
  TestCluster,
  TestService,
  testLogDir,
} from './services';
export { freePort, motoTool, repoRoot, testToolProblem } from '@sotto/local-infra';
export type { Platform } from '@sotto/stack';
export { makeSenderCertificateKeys, senderCertificateVariables } from '@sotto/stack';
export { startS3Server, S3TestServer } from './s3-server';
export { startTcpProxy, TcpProxy, TcpProxyOptions } from './tcp-proxy';
export {
  operatorDatabaseUrl,
  redisClientNamed,
  startPrivateKafkaCluster,
  startPrivateRedis,
  startPrivateRedisCluster,
  testKafka,
  testRedis,
  type PrivateRedis,
  type PrivateRedisCluster,
  type RedisClientEntry,
} from './storage';
export { startTlsImpostor, TlsImpostor } from './impostor';
export {
  callerCredentials,
  foreignPki,
  gatewayCredentials,
  identityFiles,
  plaintextCredentials,
  testTls,
} from './tls';
export { relaySendRequest } from './relay-requests';
export {
  metricsText,
  metricsUntil,
  metricUntil,
  metricValue,
  parseMetrics,
  scrapeMetrics,
  type MetricOptions,
  type MetricSamples,
  type MetricsEndpoint,
} from './metrics';
export { startOlderService, type OlderService } from './older-service';
export { outcome } from './outcome';
export { MemoryIdentityStore, MemorySenderKeyStore, MemorySessionStore } from './signal-stores';
export { topicRecords, type TopicRecord } from './kafka-records';
export {
  accountIdForms,
  everythingStored,
  redisHolding,
  redisStored,
  storedHolding,
  walk,
  type StoredPlaces,
} from './everything-stored';
