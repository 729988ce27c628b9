import { mkdirSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '@sotto/local-infra';
import {
  everyService,
  makeSenderCertificateKeys,
  operatorTls,
  SERVICE_NAMES,
  serviceEnv,
  startPlatform,
  startServiceProcess,
  type Platform,
  type PlatformOptions,
  type ServiceAddresses,
  type ServiceName,
  type SenderCertificateKeys,
  type ServiceProcess,
} from '@sotto/stack';
import { createTestDatabase } from './database';
import { testInfra } from './infra';
import { startPrivateRedis, type PrivateRedis } from './storage';

export type TestService = ServiceProcess;

/**
 * Services started here run without rate limits unless a test turns them on
 * (SOTTO_RATE_LIMITS: 'on', with its own rates): every test of a run comes
 * from 127.0.0.1 to one Redis, so per-address and per-account buckets would
 * be shared by unrelated suites. The suites that test a limit turn them on,
 * and reach the gateway from an address of their own (startTcpProxy's `from`).
 */
const LIMITS_OFF = { SOTTO_RATE_LIMITS: 'off' } as const;

/** Where services started by tests write their logs; kept until the run ends, for reading failures. */
export function testLogDir(): string {
  const dir = join(testInfra().workDir, 'logs');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * Starts one service against the harness, on free ports, with a database of
 * its own (a gateway, with sealed-sender keys of its own); `env` overrides or
 * removes (with undefined) any variable.
 */
export async function startTestService(
  name: ServiceName,
  env: Readonly<Record<string, string | undefined>> = {},
): Promise<TestService> {
  const infra = { ...testInfra(), databaseUrl: await createTestDatabase() };
  const addresses = {} as Record<ServiceName, ServiceAddresses>;
  for (const service of SERVICE_NAMES) {
    addresses[service] = { grpc: `127.0.0.1:${await freePort()}`, metrics: `127.0.0.1:${await freePort()}` };
  }
  const blobDir = mkdtempSync(join(testInfra().workDir, 'blobs-'));
  const merged: Record<string, string> = {};
  for (const [key, value] of Object.entries({
    ...serviceEnv(name, addresses, infra, blobDir, makeSenderCertificateKeys()),
    ...LIMITS_OFF,
    ...env,
  })) {
    if (value !== undefined) merged[key] = value;
  }
  return startServiceProcess({
    name,
    env: merged,
    logFile: join(testLogDir(), `${name}-${addresses[name].grpc.split(':')[1]}.log`),
    operator: operatorTls(infra.tls),
  });
}

/**
 * All six services against the harness, as `npm start` runs them (but
 * without rate limits, see LIMITS_OFF), with a database of their own; `env`
 * adds variables to some services.
 */
export async function startTestPlatform(
  env: PlatformOptions['env'] = {},
  options: {
    /** Run the services on this Redis Cluster (e.g. startPrivateRedisCluster's nodes) instead of the harness's Redis. */
    readonly redisClusterNodes?: readonly string[];
    /** Run the services on this Redis (e.g. startPrivateRedis's) instead of the harness's. */
    readonly redisUrl?: string;
  } = {},
): Promise<Platform & { databaseUrl: string; backupBlobDir: string }> {
  const infra = {
    ...testInfra(),
    databaseUrl: await createTestDatabase(),
    ...(options.redisClusterNodes === undefined ? {} : { redisClusterNodes: options.redisClusterNodes }),
    ...(options.redisUrl === undefined ? {} : { redisUrl: options.redisUrl }),
  };
  const dir = mkdtempSync(join(testInfra().workDir, 'platform-'));
  const backupBlobDir = join(dir, 'blobs');
  const platform = await startPlatform({
    infra,
    logDir: join(dir, 'logs'),
    backupBlobDir,
    env: everyService(LIMITS_OFF, env),
  });
  return Object.assign(platform, { databaseUrl: infra.databaseUrl, backupBlobDir });
}

/**
 * All six services as `startTestPlatform` runs them, but on a Redis of the test's own
 * (`startPrivateRedis`), which the test may stop without touching other suites and whose
 * command counts are this platform's alone; `env` adds variables to some services.
 */
export async function startPlatformOnPrivateRedis(
  env: PlatformOptions['env'] = {},
): Promise<{ platform: Platform & { databaseUrl: string; backupBlobDir: string }; redis: PrivateRedis }> {
  const redis = await startPrivateRedis();
  try {
    return { platform: await startTestPlatform(env, { redisUrl: redis.url }), redis };
  } catch (error) {
    await redis.stop();
    throw error;
  }
}

/** What a gateway needs to stand in front of the platform's services: their addresses. */
function upstreamOf(platform: Platform): Record<string, string> {
  return {
    PREKEY_DIRECTORY_ADDR: platform.services['prekey-directory'].grpc,
    MESSAGE_RELAY_ADDR: platform.services['message-relay'].grpc,
    PRESENCE_ADDR: platform.services.presence.grpc,
    BACKUP_STORE_ADDR: platform.services['backup-store'].grpc,
    KEY_VAULT_ADDR: platform.services['key-vault'].grpc,
  };
}

/**
 * Another gateway in front of the platform's services, as one more replica would be, with
 * sealed-sender keys of its own and `env` on top (which may override an upstream address).
 */
export function startGatewayFor(
  platform: Platform,
  env: Readonly<Record<string, string | undefined>> = {},
): Promise<TestService> {
  return startTestService('gateway', { ...upstreamOf(platform), ...env });
}

export interface TestCluster {
  /** Where each service listens (or would, if started). */
  readonly addresses: Readonly<Record<ServiceName, ServiceAddresses>>;
  /** The database the cluster's services share, for tests that play a server writing behind the API's back. */
  readonly databaseUrl: string;
  /** The sealed-sender keys its gateways sign with (the trust root for clients to pin). */
  readonly senderCertificates: SenderCertificateKeys;
  /** Starts one service wired to the others; `env` overrides or removes (undefined) variables. */
  start(name: ServiceName, env?: Readonly<Record<string, string | undefined>>): Promise<TestService>;
  /** Stops every service this cluster started that is still running. */
  stop(): Promise<void>;
}

/** Services that call each other, sharing one database and one set of addresses, started as a test needs them. */
export async function createTestCluster(): Promise<TestCluster> {
  const infra = { ...testInfra(), databaseUrl: await createTestDatabase() };
  const addresses = {} as Record<ServiceName, ServiceAddresses>;
  for (const service of SERVICE_NAMES) {
    addresses[service] = { grpc: `127.0.0.1:${await freePort()}`, metrics: `127.0.0.1:${await freePort()}` };
  }
  const blobDir = mkdtempSync(join(testInfra().workDir, 'blobs-'));
  const senderCertificates = makeSenderCertificateKeys();
  const started: TestService[] = [];
  return {
    addresses,
    databaseUrl: infra.databaseUrl,
    senderCertificates,
    async start(name, env = {}) {
      const merged: Record<string, string> = {};
      for (const [key, value] of Object.entries({
        ...serviceEnv(name, addresses, infra, blobDir, senderCertificates),
        ...LIMITS_OFF,
        ...env,
      })) {
        if (value !== undefined) merged[key] = value;
      }
      const service = await startServiceProcess({
        name,
        env: merged,
        logFile: join(testLogDir(), `${name}-${started.length}-${addresses[name].grpc.split(':')[1]}.log`),
        operator: operatorTls(infra.tls),
      });
      started.push(service);
      return service;
    },
    async stop() {
      await Promise.all(started.map((service) => service.stop()));
    },
  };
}
