export type {
  Infrastructure,
  Logger,
  RunningKafka,
  RunningPostgres,
  RunningRedis,
  RunningServer,
} from './types';
export { freePort } from './ports';
export { startKafka } from './kafka';
export { startRedis } from './redis';
export { startPostgres } from './postgres';
export { startInfrastructure } from './infrastructure';
export { ensureSystemPackages } from './system-packages';
export { repoRoot } from './repo-root';
