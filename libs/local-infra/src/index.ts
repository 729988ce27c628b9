export type {
  Infrastructure,
  Logger,
  RunningKafka,
  RunningPostgres,
  RunningRedis,
  RunningServer,
  SoftHsmToken,
} from './types';
export { freePort } from './ports';
export { startKafka } from './kafka';
export { startRedis } from './redis';
export { startPostgres } from './postgres';
export { initSoftHsmToken, prepareSoftHsm } from './softhsm';
export { startInfrastructure } from './infrastructure';
export { ensureSystemPackages } from './system-packages';
export {
  ensureTestTools,
  helmTool,
  motoTool,
  testToolProblem,
  testToolsUsedBy,
  TEST_TOOLS,
  type TestTool,
} from './test-tools';
export { repoRoot } from './repo-root';
// Local certificates live in a platform library, so that platform specs can make them too.
export { prepareLocalPki, spiffeUri, type LocalPki, type TlsIdentityFiles } from '@sotto/platform/tls';
