import type { InfraEndpoints } from '@sotto/stack';

/** Carries the harness's endpoints from Jest's global setup to the test workers. */
export const INFRA_ENV = 'SOTTO_TEST_INFRA';

export interface TestInfra extends InfraEndpoints {
  /** The harness always runs one Redis server; a test may start a cluster of its own. */
  readonly redisUrl: string;
  /** Scratch space for this test run; removed afterwards. */
  readonly workDir: string;
}

/** The Kafka, Redis and PostgreSQL the harness started for this test run. */
export function testInfra(): TestInfra {
  const raw = process.env[INFRA_ENV];
  if (!raw) {
    throw new Error(
      `${INFRA_ENV} is not set: run this test through \`npm test\` or a project whose jest config has the harness's globalSetup`,
    );
  }
  return JSON.parse(raw) as TestInfra;
}
