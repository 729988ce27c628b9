import { calleesOf, OPERATOR_IDENTITY, SERVICE_IDENTITIES, type ServiceIdentity } from '@sotto/contracts';
import { senderCertificateVariables, type SenderCertificateKeys } from './sender-certificate-keys';
import {
  prepareLocalPki,
  STORAGE_SERVERS,
  type Infrastructure,
  type LocalPki,
  type Logger,
  type StorageServer,
  type TlsIdentityFiles,
} from '@sotto/local-infra';

/** Every service of the platform, in the order they are listed to people. */
export const SERVICE_NAMES = SERVICE_IDENTITIES;

export type ServiceName = ServiceIdentity;

/** The key-vault's HSM: a local SoftHSM2 token, or a real HSM's PKCS#11 library. */
export interface HsmEndpoint {
  readonly modulePath: string;
  readonly tokenLabel: string;
  readonly pin: string;
  /** SOFTHSM2_CONF: set for a SoftHSM2 token, which reads its token directory from there. */
  readonly softHsmConf?: string;
}

export interface InfraEndpoints {
  readonly kafkaBrokers: readonly string[];
  /** One Redis server (REDIS_URL); unset when the services use `redisClusterNodes`. */
  readonly redisUrl?: string;
  /** A Redis Cluster's nodes (REDIS_CLUSTER_NODES), which the services use instead of `redisUrl` when set. */
  readonly redisClusterNodes?: readonly string[];
  readonly databaseUrl: string;
  readonly hsm: HsmEndpoint;
  /**
   * The CA and the certificates of the six services, of Kafka, Redis and
   * PostgreSQL, and of the operator (prepareLocalPki).
   */
  readonly tls: LocalPki;
  /**
   * Which of Kafka, Redis and PostgreSQL serve mutual TLS with certificates of
   * `tls` (the ones started here): each service trusts `tls.ca` for them and
   * presents its own certificate. Any other is plaintext, or configured
   * through the services' environment (REDIS_TLS_CA…).
   */
  readonly storageTls?: readonly StorageServer[];
}

/**
 * The endpoints of servers startInfrastructure started, with the CA the
 * services' certificates come from; the servers it started with TLS are the
 * ones `storageTls` lists.
 */
export function localInfraEndpoints(
  infra: Infrastructure,
  tls: LocalPki,
): InfraEndpoints & { redisUrl: string } {
  return {
    kafkaBrokers: infra.kafka.brokers,
    redisUrl: infra.redis.url,
    databaseUrl: infra.postgres.url,
    hsm: infra.hsm,
    tls,
    storageTls: [infra.kafka, infra.redis, infra.postgres].flatMap((server) =>
      server.ca === undefined ? [] : [server.name],
    ),
  };
}

/**
 * The identities a local platform needs certificates for: each service's,
 * each local server's (Kafka, Redis, PostgreSQL), and the operator's.
 */
export const PLATFORM_IDENTITIES = {
  servers: [...SERVICE_NAMES, ...STORAGE_SERVERS],
  clients: [OPERATOR_IDENTITY],
} as const;

/**
 * The local CA in `dir` and the certificates of the six services, the local
 * servers and the operator, kept across runs (see prepareLocalPki); `hosts`
 * are more names the servers' certificates carry, such as the gateway's
 * public host.
 */
export function preparePlatformPki(
  dir: string,
  options: { readonly hosts?: readonly string[]; readonly logger?: Logger } = {},
): Promise<LocalPki> {
  return prepareLocalPki({ dir, ...PLATFORM_IDENTITIES, ...options });
}

/**
 * The operator's certificate: what a supervisor checks the services' health
 * with, and what a person (or a test) reaches the local Kafka, Redis and
 * PostgreSQL with.
 */
export function operatorTls(tls: LocalPki): { ca: string; cert: string; key: string } {
  const operator = tls.identities[OPERATOR_IDENTITY];
  if (operator === undefined) throw new Error('the local CA issued no operator certificate');
  return { ca: tls.ca, ...operator };
}

/**
 * A PostgreSQL URL that names its TLS files itself, as libpq's sslrootcert,
 * sslcert and sslkey: one that psql, pg and DATABASE_URL all take whole.
 */
export function postgresUrlWithTls(url: string, files: { ca: string; cert: string; key: string }): string {
  const withFiles = new URL(url);
  withFiles.searchParams.set('sslmode', 'verify-full');
  withFiles.searchParams.set('sslrootcert', files.ca);
  withFiles.searchParams.set('sslcert', files.cert);
  withFiles.searchParams.set('sslkey', files.key);
  return withFiles.toString();
}

/**
 * The variables through which a service reaches a server of `storageTls`:
 * the local CA, and its own certificate as the client's.
 */
function storageTlsEnv(
  server: StorageServer,
  infra: InfraEndpoints,
  own: TlsIdentityFiles,
): Record<string, string> {
  if (!(infra.storageTls ?? []).includes(server)) return {};
  const prefix = { kafka: 'KAFKA', redis: 'REDIS', postgres: 'DATABASE' }[server];
  return {
    ...(server === 'kafka' ? { KAFKA_SECURITY_PROTOCOL: 'SSL' } : {}),
    [`${prefix}_TLS_CA`]: infra.tls.ca,
    [`${prefix}_TLS_CERT`]: own.cert,
    [`${prefix}_TLS_KEY`]: own.key,
  };
}

/**
 * The same variables for every service, such as SOTTO_RATE_LIMITS, with
 * `extra` added to (or overriding them for) some services.
 */
export function everyService(
  variables: Readonly<Record<string, string>>,
  extra: Partial<Record<ServiceName, Readonly<Record<string, string>>>> = {},
): Record<ServiceName, Readonly<Record<string, string>>> {
  return Object.fromEntries(SERVICE_NAMES.map((name) => [name, { ...variables, ...extra[name] }])) as Record<
    ServiceName,
    Readonly<Record<string, string>>
  >;
}

export interface ServiceAddresses {
  readonly grpc: string;
  readonly metrics: string;
}

/**
 * The environment each service gets on one machine: its own addresses and
 * certificate, the storage it uses and the addresses of the services it
 * calls (those the topology in @sotto/contracts lets it call); the gateway
 * also gets its sealed-sender certificate and key from `senderCertificates`.
 */
export function serviceEnv(
  name: ServiceName,
  addresses: Readonly<Record<ServiceName, ServiceAddresses>>,
  infra: InfraEndpoints,
  backupBlobDir: string,
  senderCertificates: SenderCertificateKeys,
): Record<string, string> {
  const certificate = infra.tls.identities[name];
  if (certificate === undefined) throw new Error(`the local CA issued no certificate for ${name}`);
  const own = {
    GRPC_ADDR: addresses[name].grpc,
    METRICS_ADDR: addresses[name].metrics,
    GRPC_TLS_CA: infra.tls.ca,
    GRPC_TLS_CERT: certificate.cert,
    GRPC_TLS_KEY: certificate.key,
    ...Object.fromEntries(
      calleesOf(name).map((callee) => [
        `${callee.toUpperCase().replace(/-/g, '_')}_ADDR`,
        addresses[callee].grpc,
      ]),
    ),
  };
  const redisTls = storageTlsEnv('redis', infra, certificate);
  const redis =
    infra.redisClusterNodes === undefined
      ? { REDIS_URL: infra.redisUrl ?? '', ...redisTls }
      : {
          REDIS_CLUSTER_NODES: infra.redisClusterNodes.join(','),
          ...(Object.keys(redisTls).length > 0 ? { REDIS_CLUSTER_TLS: 'on' } : {}),
          ...redisTls,
        };
  const postgres = { DATABASE_URL: infra.databaseUrl, ...storageTlsEnv('postgres', infra, certificate) };
  const kafka = {
    KAFKA_BROKERS: infra.kafkaBrokers.join(','),
    ...storageTlsEnv('kafka', infra, certificate),
  };
  switch (name) {
    case 'gateway':
      return { ...own, ...redis, ...senderCertificateVariables(senderCertificates) };
    case 'prekey-directory':
      return { ...own, ...postgres, ...redis };
    case 'message-relay':
      return { ...own, ...kafka, ...redis };
    case 'presence':
      return { ...own, ...redis };
    case 'backup-store':
      return { ...own, ...postgres, BACKUP_BLOB_DIR: backupBlobDir };
    case 'key-vault':
      return {
        ...own,
        ...postgres,
        ...redis,
        PKCS11_MODULE: infra.hsm.modulePath,
        PKCS11_TOKEN_LABEL: infra.hsm.tokenLabel,
        PKCS11_PIN: infra.hsm.pin,
        ...(infra.hsm.softHsmConf === undefined ? {} : { SOFTHSM2_CONF: infra.hsm.softHsmConf }),
      };
  }
}
