import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { checkHealth, type ServiceContract } from '@sotto/contracts';
import { repoRoot } from '@sotto/local-infra';
import type { ServiceName } from '@sotto/stack';
import { listServicesByReflection } from './reflection-client';
import { startTestService, type TestService } from './services';

/** Runs a service to completion with the given environment only; for start-up failures. */
export async function runServiceToExit(
  name: ServiceName,
  env: Readonly<Record<string, string>>,
  timeoutMs = 30_000,
): Promise<{ code: number | null; stderr: string }> {
  const root = repoRoot();
  const child = spawn(process.execPath, ['-r', '@swc-node/register', join('apps', name, 'src', 'main.ts')], {
    cwd: root,
    env: { PATH: process.env['PATH'] ?? '', SWC_NODE_PROJECT: join(root, 'tsconfig.json'), ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve) =>
    child.once('exit', (exitCode) => resolve(exitCode)),
  );
  clearTimeout(timer);
  return { code, stderr };
}

/**
 * The start-up contract every service keeps: it boots against the real
 * infrastructure, answers grpc.health.v1 and server reflection, serves
 * metrics and readiness, stops cleanly on SIGTERM, and refuses to start on a
 * bad environment, naming the variable.
 */
export function describeServiceBoot(
  name: ServiceName,
  contract: ServiceContract,
  badEnv: { readonly variable: string; readonly value: string },
): void {
  describe(`${name} start-up`, () => {
    let service: TestService;

    beforeAll(async () => {
      service = await startTestService(name);
    });

    afterAll(async () => {
      await service?.stop('SIGKILL');
    });

    it('answers its gRPC health check SERVING, overall and per service', async () => {
      expect(await checkHealth(service.grpc, '')).toBe('SERVING');
      for (const serviceName of contract.services) {
        expect(await checkHealth(service.grpc, serviceName)).toBe('SERVING');
      }
      expect(await checkHealth(service.grpc, 'sotto.nothing.v1.Unknown')).toContain('unknown for service');
    });

    it('lists its services through server reflection', async () => {
      expect(await listServicesByReflection(service.grpc)).toEqual(
        [...contract.services, 'grpc.health.v1.Health'].sort(),
      );
    });

    it('serves Prometheus metrics and reports its storage ready', async () => {
      const metrics = await fetch(`http://${service.metrics}/metrics`);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain(`sotto_process_cpu_user_seconds_total{service="${name}"}`);
      const ready = await fetch(`http://${service.metrics}/readyz`);
      const report = (await ready.json()) as { ready: boolean; checks: Record<string, string> };
      expect(report.ready).toBe(true);
      expect(Object.values(report.checks).every((outcome) => outcome === 'ok')).toBe(true);
    });

    it('stops cleanly on SIGTERM', async () => {
      expect(await service.stop('SIGTERM')).toBe(0);
    });

    it(`exits non-zero naming ${badEnv.variable} when it is invalid`, async () => {
      const { code, stderr } = await runServiceToExit(name, { [badEnv.variable]: badEnv.value });
      expect(code).not.toBe(0);
      expect(stderr).toContain(`${name}: invalid environment:`);
      expect(stderr).toMatch(new RegExp(`^  ${badEnv.variable}: `, 'm'));
    });
  });
}
