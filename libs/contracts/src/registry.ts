/** One gRPC contract: a versioned protobuf package and the services it declares. */
export interface ServiceContract {
  /** Protobuf package, e.g. `sotto.presence.v1`. */
  readonly package: string;
  /** Files relative to PROTO_ROOT. */
  readonly protoFiles: readonly string[];
  /** Fully qualified service names, e.g. `sotto.presence.v1.PresenceService`. */
  readonly services: readonly string[];
}

function contract(pkg: string, file: string, services: readonly string[]): ServiceContract {
  return {
    package: pkg,
    protoFiles: [file],
    services: services.map((name) => `${pkg}.${name}`),
  };
}

/** Every contract, keyed by the service that implements it. */
export const CONTRACTS = {
  gateway: contract('sotto.gateway.v1', 'sotto/gateway/v1/gateway.proto', [
    'AccountService',
    'KeysService',
    'MessagingService',
    'BackupService',
    'VaultService',
  ]),
  'prekey-directory': contract('sotto.directory.v1', 'sotto/directory/v1/directory.proto', ['DirectoryService']),
  'message-relay': contract('sotto.relay.v1', 'sotto/relay/v1/relay.proto', ['RelayService']),
  presence: contract('sotto.presence.v1', 'sotto/presence/v1/presence.proto', ['PresenceService']),
  'backup-store': contract('sotto.backup.v1', 'sotto/backup/v1/backup.proto', ['BackupStoreService']),
  'key-vault': contract('sotto.vault.v1', 'sotto/vault/v1/vault.proto', ['KeyVaultService']),
} as const satisfies Record<string, ServiceContract>;

export type ContractName = keyof typeof CONTRACTS;
