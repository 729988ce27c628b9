import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { motoTool, testToolProblem } from '@sotto/local-infra';

const READY_TIMEOUT_MS = 60_000;

export interface S3TestServer {
  /** http://127.0.0.1:PORT */
  readonly endpoint: string;
  /** The environment that points the backup-store at `bucket` on this server. */
  env(bucket: string): Record<string, string>;
  stop(): Promise<void>;
}

/**
 * A real S3-compatible server (moto's server mode, which `npm test` installs)
 * on a loopback port, for tests of the S3 blob store. Fails, saying how to
 * install it, when it is missing: S3 tests never pass by skipping.
 */
export async function startS3Server(options: { port: number; logFile: string }): Promise<S3TestServer> {
  const problem = testToolProblem(motoTool);
  if (problem !== undefined) throw new Error(`no S3-compatible server for the tests: ${problem}`);
  const [python, ...moto] = motoTool.command();
  const log = openSync(options.logFile, 'a');
  const child = spawn(python, [...moto, '--host', '127.0.0.1', '--port', String(options.port)], {
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  // A test run that dies must not leave the server behind.
  const killOnExit = (): void => void child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const endpoint = `http://127.0.0.1:${options.port}`;
  const stop = async (): Promise<void> => {
    process.off('exit', killOnExit);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const answered = await fetch(`${endpoint}/`).then(
      (response) => response.ok,
      () => false,
    );
    if (answered) break;
    const early = await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 200, undefined))]);
    if (early !== undefined || Date.now() > deadline) {
      await stop();
      const tail = readFileSync(options.logFile, 'utf8').trimEnd().split('\n').slice(-20).join('\n');
      throw new Error(`moto's server did not answer on ${endpoint} (exit ${String(early)}):\n${tail}`);
    }
  }

  return {
    endpoint,
    env: (bucket) => ({
      BACKUP_S3_BUCKET: bucket,
      BACKUP_S3_ENDPOINT: endpoint,
      BACKUP_S3_REGION: 'us-east-1',
      // moto accepts any credentials; these name no real account.
      BACKUP_S3_ACCESS_KEY_ID: 'sotto-test',
      BACKUP_S3_SECRET_ACCESS_KEY: 'sotto-test-secret',
      BACKUP_S3_FORCE_PATH_STYLE: 'true',
    }),
    stop,
  };
}
