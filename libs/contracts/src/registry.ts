import type { ServiceDefinition } from '@grpc/grpc-js';
import { BackupStoreServiceService } from './generated/sotto/backup/v1/backup';
import { DirectoryServiceService } from './generated/sotto/directory/v1/directory';
import {
  AccountServiceService,
  BackupServiceService,
  DeviceServiceService,
  KeysServiceService,
  MessagingServiceService,
  VaultServiceService,
} from './generated/sotto/gateway/v1/gateway';
import { PresenceServiceService } from './generated/sotto/presence/v1/presence';
import { RelayServiceService } from './generated/sotto/relay/v1/relay';
import { KeyVaultServiceService } from './generated/sotto/vault/v1/vault';

/** One gRPC contract: a versioned protobuf package and the services it declares. */
export interface ServiceContract {
  /** Protobuf package, e.g. `sotto.presence.v1`. */
  readonly package: string;
  /** Files relative to PROTO_ROOT, for server reflection. */
  readonly protoFiles: readonly string[];
  /** The generated grpc-js definitions of its services: paths and codecs. */
  readonly definitions: readonly ServiceDefinition[];
  /** Fully qualified service names, e.g. `sotto.presence.v1.PresenceService`. */
  readonly services: readonly string[];
}

/** `sotto.relay.v1.RelayService`, from the paths of a generated service definition. */
export function serviceNameOf(definition: { readonly [method: string]: { readonly path: string } }): string {
  const first = Object.values(definition)[0];
  const name = first?.path.split('/')[1];
  if (!name) throw new Error('a service definition without methods');
  return name;
}

function contract(pkg: string, file: string, definitions: readonly ServiceDefinition[]): ServiceContract {
  return {
    package: pkg,
    protoFiles: [file],
    definitions,
    services: definitions.map(serviceNameOf),
  };
}

/** Every contract, keyed by the service that implements it. */
export const CONTRACTS = {
  gateway: contract('sotto.gateway.v1', 'sotto/gateway/v1/gateway.proto', [
    AccountServiceService,
    KeysServiceService,
    MessagingServiceService,
    BackupServiceService,
    VaultServiceService,
    DeviceServiceService,
  ]),
  'prekey-directory': contract('sotto.directory.v1', 'sotto/directory/v1/directory.proto', [
    DirectoryServiceService,
  ]),
  'message-relay': contract('sotto.relay.v1', 'sotto/relay/v1/relay.proto', [RelayServiceService]),
  presence: contract('sotto.presence.v1', 'sotto/presence/v1/presence.proto', [PresenceServiceService]),
  'backup-store': contract('sotto.backup.v1', 'sotto/backup/v1/backup.proto', [BackupStoreServiceService]),
  'key-vault': contract('sotto.vault.v1', 'sotto/vault/v1/vault.proto', [KeyVaultServiceService]),
} as const satisfies Record<string, ServiceContract>;

export type ContractName = keyof typeof CONTRACTS;
