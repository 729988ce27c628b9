import { calleesOf, OPERATOR_IDENTITY, SERVICE_IDENTITIES, type ServiceIdentity } from '@sotto/contracts';
import { prepareLocalPki, type LocalPki, type Logger } from '@sotto/local-infra';

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
  readonly redisUrl: string;
  readonly databaseUrl: string;
  readonly hsm: HsmEndpoint;
  /** The CA and the certificates of the six services and the operator (prepareLocalPki). */
  readonly tls: LocalPki;
}

/** The identities a local platform needs certificates for: each service's, and the operator's. */
export const PLATFORM_IDENTITIES = { servers: SERVICE_NAMES, clients: [OPERATOR_IDENTITY] } as const;

/**
 * The local CA in `dir` and the certificates of the six services and the
 * operator, kept across runs (see prepareLocalPki); `hosts` are more names
 * the servers' certificates carry, such as the gateway's public host.
 */
export function preparePlatformPki(
  dir: string,
  options: { readonly hosts?: readonly string[]; readonly logger?: Logger } = {},
): Promise<LocalPki> {
  return prepareLocalPki({ dir, ...PLATFORM_IDENTITIES, ...options });
}

/** The operator's certificate: what a supervisor checks the services' health with. */
export function operatorTls(tls: LocalPki): { ca: string; cert: string; key: string } {
  const operator = tls.identities[OPERATOR_IDENTITY];
  if (operator === undefined) throw new Error('the local CA issued no operator certificate');
  return { ca: tls.ca, ...operator };
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
 * calls (those the topology in @sotto/contracts lets it call).
 */
export function serviceEnv(
  name: ServiceName,
  addresses: Readonly<Record<ServiceName, ServiceAddresses>>,
  infra: InfraEndpoints,
  backupBlobDir: string,
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
  switch (name) {
    case 'gateway':
      return { ...own, REDIS_URL: infra.redisUrl };
    case 'prekey-directory':
      return { ...own, DATABASE_URL: infra.databaseUrl, REDIS_URL: infra.redisUrl };
    case 'message-relay':
      return { ...own, KAFKA_BROKERS: infra.kafkaBrokers.join(','), REDIS_URL: infra.redisUrl };
    case 'presence':
      return { ...own, REDIS_URL: infra.redisUrl };
    case 'backup-store':
      return { ...own, DATABASE_URL: infra.databaseUrl, BACKUP_BLOB_DIR: backupBlobDir };
    case 'key-vault':
      return {
        ...own,
        DATABASE_URL: infra.databaseUrl,
        REDIS_URL: infra.redisUrl,
        PKCS11_MODULE: infra.hsm.modulePath,
        PKCS11_TOKEN_LABEL: infra.hsm.tokenLabel,
        PKCS11_PIN: infra.hsm.pin,
        ...(infra.hsm.softHsmConf === undefined ? {} : { SOFTHSM2_CONF: infra.hsm.softHsmConf }),
      };
  }
}
