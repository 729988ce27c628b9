export type {
  Infrastructure,
  KafkaClusterNode,
  Logger,
  RunningKafka,
  RunningKafkaCluster,
  RunningPostgres,
  RunningRedis,
  RunningRedisCluster,
  RunningServer,
  ServerTls,
  SoftHsmToken,
} from './types';
export { freePort } from './ports';
export {
  kafkaClientConfig,
  runKafkaTool,
  startKafka,
  startKafkaCluster,
  type KafkaClusterOptions,
} from './kafka';
export { startRedis } from './redis';
export { startRedisCluster, CLUSTER_NODE_TIMEOUT_MS } from './redis-cluster';
export { startPostgres } from './postgres';
export { initSoftHsmToken, prepareSoftHsm } from './softhsm';
export { startInfrastructure, storageServerTls, STORAGE_SERVERS, type StorageServer } from './infrastructure';
export { ensureSystemPackages } from './system-packages';
export {
  ensureTestTools,
  helmTool,
  kubeconformSchemaLocations,
  kubeconformTool,
  motoTool,
  testToolProblem,
  testToolsUsedBy,
  TEST_TOOLS,
  type TestTool,
} from './test-tools';
export { KUBERNETES_SCHEMA_VERSIONS } from './kubernetes-schemas';
export { repoRoot } from './repo-root';
// Local certificates live in a platform library, so that platform specs can make them too.
export {
  clientTlsOptions,
  prepareLocalPki,
  spiffeUri,
  type ClientTlsFiles,
  type LocalPki,
  type TlsIdentityFiles,
} from '@sotto/platform/tls';
