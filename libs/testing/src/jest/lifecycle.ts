import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureSystemPackages, startInfrastructure, type Infrastructure } from '@sotto/local-infra';
import { localInfraEndpoints, preparePlatformPki } from '@sotto/stack';
import { INFRA_ENV, type TestInfra } from '../infra';

declare global {
  var __sottoTestInfra: { infra: Infrastructure; workDir: string } | undefined;
}

/**
 * One CA, one Kafka, Redis and PostgreSQL serving mutual TLS with its certificates, and one
 * SoftHSM2 token for the whole test run. When `npm test` already started them (INFRA_ENV is
 * set), every project reuses that set.
 */
export async function globalSetup(): Promise<void> {
  if (process.env[INFRA_ENV]) return;
  await ensureSystemPackages();
  const workDir = mkdtempSync(join(tmpdir(), 'sotto-test-'));
  const tls = await preparePlatformPki(join(workDir, 'tls'));
  const infra = await startInfrastructure({ dataDir: join(workDir, 'infra'), tls });
  globalThis.__sottoTestInfra = { infra, workDir };
  const endpoints: TestInfra = { ...localInfraEndpoints(infra, tls), workDir };
  process.env[INFRA_ENV] = JSON.stringify(endpoints);
  // The CLI and the SDK trust the gateway's certificate through SOTTO_CA, as a person's would.
  process.env['SOTTO_CA'] = tls.ca;
  // For specs that load the PKCS#11 library themselves: SoftHSM2 reads its configuration from the
  // process environment, which a test file cannot change (Jest gives each one a copy of it).
  process.env['SOFTHSM2_CONF'] = infra.hsm.softHsmConf;
}

export async function globalTeardown(): Promise<void> {
  const started = globalThis.__sottoTestInfra;
  if (!started) return;
  globalThis.__sottoTestInfra = undefined;
  await started.infra.stop();
  rmSync(started.workDir, { recursive: true, force: true });
}
