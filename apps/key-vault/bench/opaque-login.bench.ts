/**
 * Server CPU time per OPAQUE login, for the capacity model: process.cpuUsage()
 * around the vault's own StartLogin and FinishLogin steps (OpaqueServer, as the
 * service runs them), for many logins against one registered record. The
 * client's work (blinding, key stretching) is left out of the figure.
 *
 *   node -r @swc-node/register apps/key-vault/bench/opaque-login.bench.ts [logins]
 *
 * With PKCS11_MODULE, PKCS11_TOKEN_LABEL and PKCS11_PIN set (and SOFTHSM2_CONF
 * for SoftHSM2), it also measures the sealing a login costs the vault besides
 * OPAQUE: unsealing the record, sealing and unsealing the login state, and
 * unsealing the recovery key.
 */
import { randomBytes } from 'node:crypto';
import * as opaque from '@serenity-kit/opaque';
import { Registry } from 'prom-client';
import { VaultMetrics } from '../src/metrics/vault-metrics';
import { Pkcs11Token } from '../src/sealing/pkcs11-token';
import { Sealer } from '../src/sealing/sealer';
import { OpaqueServer } from '../src/server-setup/opaque-server';

// Cheap key stretching on the client: it does not change the server's work, only the bench's length.
const keyStretching = { 'argon2id-custom': { iterations: 1, memory: 1024, parallelism: 1 } } as const;

const microseconds = (usage: NodeJS.CpuUsage): number => usage.user + usage.system;

function summary(samples: number[]): { mean: number; p50: number; p95: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number): number =>
    sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
  const mean = sorted.reduce((sum, value) => sum + value, 0) / sorted.length;
  return { mean: Math.round(mean), p50: at(50), p95: at(95) };
}

function measureOpaque(logins: number): { start: number[]; finish: number[]; total: number[] } {
  const server = new OpaqueServer(opaque.server.createSetup(), new VaultMetrics(new Registry()));
  const credentialIdentifier = randomBytes(16);
  const password = 'correct horse battery staple';
  const registration = opaque.client.startRegistration({ password });
  const response = server.registrationResponse(
    credentialIdentifier,
    Buffer.from(registration.registrationRequest, 'base64url'),
  );
  const { registrationRecord } = opaque.client.finishRegistration({
    password,
    clientRegistrationState: registration.clientRegistrationState,
    registrationResponse: response.toString('base64url'),
    keyStretching,
  });
  const record = Buffer.from(registrationRecord, 'base64url');

  const start: number[] = [];
  const finish: number[] = [];
  for (let login = 0; login < logins; login += 1) {
    const client = opaque.client.startLogin({ password });
    let before = process.cpuUsage();
    const ke2 = server.startLogin(
      credentialIdentifier,
      record,
      Buffer.from(client.startLoginRequest, 'base64url'),
    );
    start.push(microseconds(process.cpuUsage(before)));
    const finished = opaque.client.finishLogin({
      password,
      clientLoginState: client.clientLoginState,
      loginResponse: ke2.response.toString('base64url'),
      keyStretching,
    });
    if (!finished) throw new Error('the bench login failed');
    before = process.cpuUsage();
    const ok = server.finishLogin(ke2.state, Buffer.from(finished.finishLoginRequest, 'base64url'));
    finish.push(microseconds(process.cpuUsage(before)));
    if (!ok) throw new Error('the server refused the bench login');
  }
  return { start, finish, total: start.map((value, index) => value + (finish[index] ?? 0)) };
}

function measureSealing(logins: number): number[] | undefined {
  const { PKCS11_MODULE: modulePath, PKCS11_TOKEN_LABEL: tokenLabel, PKCS11_PIN: pin } = process.env;
  if (!modulePath || !tokenLabel || !pin) return undefined;
  const token = Pkcs11Token.open({ modulePath, tokenLabel, pin });
  try {
    const sealer = new Sealer(token, token.generateKey(`bench-${randomBytes(4).toString('hex')}`));
    const record = sealer.seal(randomBytes(192), 'record');
    const recoveryKey = sealer.seal(randomBytes(100), 'recovery-key');
    const samples: number[] = [];
    for (let login = 0; login < logins; login += 1) {
      const before = process.cpuUsage();
      sealer.unseal(record, 'record');
      sealer.unseal(sealer.seal(randomBytes(300), 'login'), 'login');
      sealer.unseal(recoveryKey, 'recovery-key');
      samples.push(microseconds(process.cpuUsage(before)));
    }
    return samples;
  } finally {
    token.close();
  }
}

async function main(): Promise<void> {
  const logins = Number(process.argv[2] ?? 500);
  if (!Number.isInteger(logins) || logins < 1)
    throw new Error('usage: opaque-login.bench.ts [logins, a whole number]');
  await opaque.ready;
  measureOpaque(20); // warm-up: WebAssembly compilation and the JIT
  const measured = measureOpaque(logins);
  const sealing = measureSealing(logins);
  const report = {
    logins,
    serverCpuMicrosecondsPerLogin: summary(measured.total),
    startLogin: summary(measured.start),
    finishLogin: summary(measured.finish),
    ...(sealing ? { hsmSealingMicrosecondsPerLogin: summary(sealing) } : {}),
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).message}\n`);
  process.exit(1);
});
