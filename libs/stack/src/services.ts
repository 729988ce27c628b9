/** Every service of the platform, in the order they are listed to people. */
export const SERVICE_NAMES = [
  'gateway',
  'prekey-directory',
  'message-relay',
  'presence',
  'backup-store',
  'key-vault',
] as const;

export type ServiceName = (typeof SERVICE_NAMES)[number];

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
}

export interface ServiceAddresses {
  readonly grpc: string;
  readonly metrics: string;
}

/**
 * The environment each service gets on one machine: its own addresses, the
 * storage it uses and the addresses of the services it calls. This is the
 * only place that knows who talks to whom.
 */
export function serviceEnv(
  name: ServiceName,
  addresses: Readonly<Record<ServiceName, ServiceAddresses>>,
  infra: InfraEndpoints,
  backupBlobDir: string,
): Record<string, string> {
  const own = { GRPC_ADDR: addresses[name].grpc, METRICS_ADDR: addresses[name].metrics };
  const upstream = {
    PREKEY_DIRECTORY_ADDR: addresses['prekey-directory'].grpc,
    MESSAGE_RELAY_ADDR: addresses['message-relay'].grpc,
    PRESENCE_ADDR: addresses.presence.grpc,
    BACKUP_STORE_ADDR: addresses['backup-store'].grpc,
    KEY_VAULT_ADDR: addresses['key-vault'].grpc,
  };
  switch (name) {
    case 'gateway':
      return { ...own, ...upstream, REDIS_URL: infra.redisUrl };
    case 'prekey-directory':
      return { ...own, DATABASE_URL: infra.databaseUrl, REDIS_URL: infra.redisUrl };
    case 'message-relay':
      return {
        ...own,
        KAFKA_BROKERS: infra.kafkaBrokers.join(','),
        REDIS_URL: infra.redisUrl,
        PREKEY_DIRECTORY_ADDR: upstream.PREKEY_DIRECTORY_ADDR,
        PRESENCE_ADDR: upstream.PRESENCE_ADDR,
      };
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
