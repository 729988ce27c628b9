import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { Client, status, type ChannelCredentials, type MethodDefinition } from '@grpc/grpc-js';
import {
  caTlsCredentials,
  checkHealth,
  mayCall,
  mutualTlsCredentials,
  OPERATOR_IDENTITY,
  SERVICE_IDENTITIES,
  type ServiceContract,
} from '@sotto/contracts';
import { repoRoot, type LocalPki } from '@sotto/local-infra';
import type { ServiceName } from '@sotto/stack';
import { listServicesByReflection } from './reflection-client';
import { startTestService, type TestService } from './services';
import {
  callerCredentials,
  callWithEmptyRequest,
  foreignPki,
  identityFiles,
  plaintextCredentials,
  testTls,
  type CallOutcome,
} from './tls';

/**
 * Runs a service to completion with the given environment and nothing else
 * but its certificate from this run's CA (which `env` may override); for
 * start-up failures.
 */
export async function runServiceToExit(
  name: ServiceName,
  env: Readonly<Record<string, string>>,
  timeoutMs = 30_000,
): Promise<{ code: number | null; stderr: string }> {
  const root = repoRoot();
  const tls = identityFiles(name);
  const child = spawn(process.execPath, ['-r', '@swc-node/register', join('apps', name, 'src', 'main.ts')], {
    cwd: root,
    env: {
      PATH: process.env['PATH'] ?? '',
      SWC_NODE_PROJECT: join(root, 'tsconfig.json'),
      GRPC_TLS_CA: tls.ca,
      GRPC_TLS_CERT: tls.cert,
      GRPC_TLS_KEY: tls.key,
      ...env,
    },
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

/** Every method of a contract, as grpc-js definitions. */
function methodsOf(contract: ServiceContract): MethodDefinition<unknown, unknown>[] {
  return contract.definitions.flatMap((definition) => Object.values(definition));
}

/** The TLS version a raw handshake ends with, or the reason it failed. */
function handshake(address: string, options: { ca: Buffer; maxVersion?: 'TLSv1.2' }): Promise<string> {
  const index = address.lastIndexOf(':');
  return new Promise((resolve) => {
    const socket = connect(
      {
        host: address.slice(0, index),
        port: Number(address.slice(index + 1)),
        // SNI carries host names only; every certificate of the platform names localhost.
        servername: 'localhost',
        ALPNProtocols: ['h2'],
        ...options,
      },
      () => {
        resolve(socket.getProtocol() ?? 'unknown');
        socket.destroy();
      },
    );
    socket.once('error', (error: Error) => resolve(error.message));
  });
}

/**
 * The start-up contract every service keeps: it boots against the real
 * infrastructure, answers grpc.health.v1 and server reflection, serves
 * metrics and readiness, stops cleanly on SIGTERM, and refuses to start on a
 * bad environment, naming the variable. Its transport, attacked: plaintext,
 * TLS older than 1.3, and certificates from another CA are refused; an
 * internal service also refuses clients without a certificate, and answers
 * each method only to the callers the topology allows.
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

    it('answers its gRPC health check SERVING to the operator, overall and per service', async () => {
      const operator = callerCredentials(OPERATOR_IDENTITY);
      expect(await checkHealth(service.grpc, operator, '')).toBe('SERVING');
      for (const serviceName of contract.services) {
        expect(await checkHealth(service.grpc, operator, serviceName)).toBe('SERVING');
      }
      expect(await checkHealth(service.grpc, operator, 'sotto.nothing.v1.Unknown')).toContain(
        'unknown for service',
      );
    });

    it('lists its services through server reflection to the operator', async () => {
      expect(await listServicesByReflection(service.grpc, callerCredentials(OPERATOR_IDENTITY))).toEqual(
        [...contract.services, 'grpc.health.v1.Health'].sort(),
      );
    });

    describe('transport security, attacked', () => {
      let foreign: LocalPki;

      beforeAll(async () => {
        foreign = await foreignPki();
      });

      it("will not start with another service's certificate, or one from another CA", async () => {
        const other = name === 'presence' ? 'key-vault' : 'presence';
        const borrowed = identityFiles(other);
        await expect(
          startTestService(name, { GRPC_TLS_CERT: borrowed.cert, GRPC_TLS_KEY: borrowed.key }),
        ).rejects.toThrow(`GRPC_TLS_CERT names ${other}, not spiffe://sotto/${name}`);
        const forged = identityFiles(name, foreign);
        await expect(
          startTestService(name, { GRPC_TLS_CERT: forged.cert, GRPC_TLS_KEY: forged.key }),
        ).rejects.toThrow('GRPC_TLS_CERT was not issued by the CA in GRPC_TLS_CA');
      });

      it('refuses a plaintext client', async () => {
        expect(await checkHealth(service.grpc, plaintextCredentials())).not.toBe('SERVING');
      });

      it('speaks TLS 1.3 and refuses TLS 1.2', async () => {
        const ca = readFileSync(testTls().ca);
        expect(await handshake(service.grpc, { ca })).toBe('TLSv1.3');
        expect(await handshake(service.grpc, { ca, maxVersion: 'TLSv1.2' })).toMatch(/protocol version/);
      });

      it('is refused by a client that trusts another CA', async () => {
        const trustsForeignCa = mutualTlsCredentials({ ...identityFiles(OPERATOR_IDENTITY, foreign) });
        expect(await checkHealth(service.grpc, trustsForeignCa)).toMatch(/^certificate not trusted/);
      });

      if (name === 'gateway') {
        it('serves anyone who trusts its CA, without a client certificate', async () => {
          expect(await checkHealth(service.grpc, caTlsCredentials(testTls().ca))).toBe('SERVING');
        });

        it('verifies with openssl s_client against the CA', () => {
          const result = spawnSync(
            'openssl',
            ['s_client', '-connect', service.grpc, '-CAfile', testTls().ca, '-brief'],
            { input: '', encoding: 'utf8', timeout: 10_000 },
          );
          expect(result.stderr).toContain('Verification: OK');
          expect(result.stderr).toContain('Protocol version: TLSv1.3');
        });
        return;
      }

      /** How each method of the contract ends for a client with these credentials. */
      async function outcomes(credentials: ChannelCredentials): Promise<Record<string, CallOutcome>> {
        const client = new Client(service.grpc, credentials);
        try {
          const ended: Record<string, CallOutcome> = {};
          for (const method of methodsOf(contract))
            ended[method.path] = await callWithEmptyRequest(client, method);
          return ended;
        } finally {
          client.close();
        }
      }

      it('refuses a client without a certificate', async () => {
        expect(await checkHealth(service.grpc, caTlsCredentials(testTls().ca))).toMatch(
          /^TLS handshake refused \(.*certificate required\)/,
        );
      });

      it('refuses a certificate from another CA, even one naming a caller it allows', async () => {
        // Under TLS 1.3 the server refuses the client's certificate after the client has finished its side.
        const forged = mutualTlsCredentials({ ...identityFiles('gateway', foreign), ca: testTls().ca });
        expect(await checkHealth(service.grpc, forged)).not.toBe('SERVING');
        const [first] = methodsOf(contract);
        const client = new Client(service.grpc, forged);
        try {
          expect((await callWithEmptyRequest(client, first)).code).toBe(status.UNAVAILABLE);
        } finally {
          client.close();
        }
      });

      it('gives the operator health and reflection, and PERMISSION_DENIED on every other method', async () => {
        const ended = await outcomes(callerCredentials(OPERATOR_IDENTITY));
        for (const [path, outcome] of Object.entries(ended)) {
          expect([path, outcome]).toEqual([
            path,
            { code: status.PERMISSION_DENIED, details: `caller: operator may not call ${path}` },
          ]);
        }
      });

      it.each(SERVICE_IDENTITIES)('answers %s only on the methods the topology allows it', async (caller) => {
        const ended = await outcomes(callerCredentials(caller));
        for (const [path, outcome] of Object.entries(ended)) {
          if (mayCall(name, caller, path))
            expect([path, outcome.code]).not.toEqual([path, status.PERMISSION_DENIED]);
          else
            expect([path, outcome]).toEqual([
              path,
              { code: status.PERMISSION_DENIED, details: `caller: ${caller} may not call ${path}` },
            ]);
        }
      });
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
