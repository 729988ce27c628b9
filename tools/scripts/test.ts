/**
 * `npm test`: installs what the tests need and the machine lacks (Debian
 * packages; Helm and moto's S3 server, once, under .sotto/tools), makes a CA
 * with the services' and the servers' certificates, starts one Kafka, Redis
 * and PostgreSQL serving mutual TLS with them, and prepares a SoftHSM2 token,
 * for the whole run, runs every project's tests with Jest, stops the servers,
 * and ends with the line `jest: N passed, M failed[, K skipped]`. Extra
 * arguments go to Jest.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ensureSystemPackages,
  ensureTestTools,
  repoRoot,
  startInfrastructure,
  testToolProblem,
  testToolsUsedBy,
  TEST_TOOLS,
  type Infrastructure,
  type TestTool,
} from '@sotto/local-infra';
import { localInfraEndpoints, preparePlatformPki } from '@sotto/stack';
import { INFRA_ENV } from '@sotto/testing';

interface JestReport {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  numRuntimeErrorTestSuites: number;
}

const log = (message: string): void => void process.stderr.write(`[test] ${message}\n`);
const logger = { info: log, warn: log };

/** The spec files Jest would run with these arguments, or undefined if it cannot say. */
function listTests(root: string, jestArgs: string[]): string[] | undefined {
  const jest = join(root, 'node_modules', 'jest', 'bin', 'jest.js');
  const listed = spawnSync(process.execPath, [jest, ...jestArgs, '--listTests', '--json'], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  try {
    return listed.status === 0 ? (JSON.parse(listed.stdout) as string[]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The test tools to install before this run: every one missing, unless Jest's arguments select
 * tests none of which run it (`npm test -- apps/gateway` does not build Helm).
 */
function toolsToInstall(root: string, jestArgs: string[]): TestTool[] {
  const missing = TEST_TOOLS.filter((tool) => testToolProblem(tool) !== undefined);
  if (missing.length === 0 || jestArgs.length === 0) return missing;
  const tests = listTests(root, jestArgs);
  return tests === undefined ? missing : testToolsUsedBy(missing, tests, root);
}

async function main(): Promise<number> {
  const root = repoRoot();
  const jestArgs = process.argv.slice(2);
  const workDir = mkdtempSync(join(tmpdir(), 'sotto-test-'));
  let infra: Infrastructure | undefined;
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await infra?.stop();
    rmSync(workDir, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void stop().then(() => process.exit(130)));
  }

  try {
    await ensureSystemPackages();
    await ensureTestTools(toolsToInstall(root, jestArgs), logger);

    log('starting Kafka, Redis and PostgreSQL (TLS) for this run');
    const started = Date.now();
    const tls = await preparePlatformPki(join(workDir, 'tls'));
    infra = await startInfrastructure({ dataDir: join(workDir, 'infra'), logger, tls });
    log(`infrastructure ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    const reportFile = join(workDir, 'jest-report.json');
    const env = {
      ...process.env,
      [INFRA_ENV]: JSON.stringify({ ...localInfraEndpoints(infra, tls), workDir }),
      // The CLI and the SDK trust the gateway's certificate through SOTTO_CA, as a person's would.
      SOTTO_CA: tls.ca,
      // SoftHSM2 reads it from the environment, for specs that load the PKCS#11 library themselves.
      SOFTHSM2_CONF: infra.hsm.softHsmConf,
    };
    const jest = join(root, 'node_modules', 'jest', 'bin', 'jest.js');
    const code = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, [jest, '--json', `--outputFile=${reportFile}`, ...jestArgs], {
        cwd: root,
        env,
        stdio: 'inherit',
      });
      child.once('exit', (exitCode) => resolve(exitCode ?? 1));
    });

    let summary = 'jest: 0 passed, 1 failed (Jest wrote no report)';
    try {
      const report = JSON.parse(readFileSync(reportFile, 'utf8')) as JestReport;
      // A test file that cannot even load counts as a failure, not as nothing.
      const failed = report.numFailedTests + report.numRuntimeErrorTestSuites;
      const skipped = report.numPendingTests + report.numTodoTests;
      summary = `jest: ${report.numPassedTests} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`;
    } catch {
      // keep the failure summary
    }
    await stop();
    process.stdout.write(`${summary}\n`);
    return code;
  } catch (error) {
    await stop();
    process.stderr.write(`${(error as Error).message}\n`);
    process.stdout.write('jest: 0 passed, 1 failed\n');
    return 1;
  }
}

void main().then((code) => process.exit(code));
