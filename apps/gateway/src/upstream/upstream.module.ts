import {
  Inject,
  Injectable,
  Module,
  type DynamicModule,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { credentials } from '@grpc/grpc-js';
import { ClientsModule, type ClientGrpc } from '@nestjs/microservices';
import { CONTRACTS } from '@sotto/contracts';
import { BackupStoreServiceClient as StreamingBackupStoreClient } from '@sotto/contracts/generated/client/sotto/backup/v1/backup';
import type { BackupStoreServiceClient } from '@sotto/contracts/generated/nest/sotto/backup/v1/backup';
import type { DirectoryServiceClient } from '@sotto/contracts/generated/nest/sotto/directory/v1/directory';
import type { PresenceServiceClient } from '@sotto/contracts/generated/nest/sotto/presence/v1/presence';
import type { RelayServiceClient } from '@sotto/contracts/generated/nest/sotto/relay/v1/relay';
import type { KeyVaultServiceClient } from '@sotto/contracts/generated/nest/sotto/vault/v1/vault';
import { grpcClientOptions } from '@sotto/platform/grpc';
import { GATEWAY_ENV, type GatewayEnv } from '../env';

const TOKENS = {
  directory: 'PREKEY_DIRECTORY',
  relay: 'MESSAGE_RELAY',
  presence: 'PRESENCE',
  backupStore: 'BACKUP_STORE',
  keyVault: 'KEY_VAULT',
} as const;

/** The internal services behind the gateway, as typed gRPC clients. */
@Injectable()
export class Upstream implements OnModuleInit, OnApplicationShutdown {
  directory!: DirectoryServiceClient;
  relay!: RelayServiceClient;
  presence!: PresenceServiceClient;
  backupStore!: BackupStoreServiceClient;
  keyVault!: KeyVaultServiceClient;
  /**
   * The backup store as a plain grpc-js client, for the byte streams: its
   * streams pause and resume, so a backup passes through the gateway with
   * bounded memory whichever side is slower.
   */
  readonly backupStreams: StreamingBackupStoreClient;

  constructor(
    @Inject(TOKENS.directory) private readonly directoryClient: ClientGrpc,
    @Inject(TOKENS.relay) private readonly relayClient: ClientGrpc,
    @Inject(TOKENS.presence) private readonly presenceClient: ClientGrpc,
    @Inject(TOKENS.backupStore) private readonly backupStoreClient: ClientGrpc,
    @Inject(TOKENS.keyVault) private readonly keyVaultClient: ClientGrpc,
    @Inject(GATEWAY_ENV) env: GatewayEnv,
  ) {
    const { channelOptions } = grpcClientOptions(CONTRACTS['backup-store'], env.BACKUP_STORE_ADDR).options;
    this.backupStreams = new StreamingBackupStoreClient(
      env.BACKUP_STORE_ADDR,
      credentials.createInsecure(),
      channelOptions,
    );
  }

  onModuleInit(): void {
    this.directory = this.directoryClient.getService<DirectoryServiceClient>('DirectoryService');
    this.relay = this.relayClient.getService<RelayServiceClient>('RelayService');
    this.presence = this.presenceClient.getService<PresenceServiceClient>('PresenceService');
    this.backupStore = this.backupStoreClient.getService<BackupStoreServiceClient>('BackupStoreService');
    this.keyVault = this.keyVaultClient.getService<KeyVaultServiceClient>('KeyVaultService');
  }

  onApplicationShutdown(): void {
    this.backupStreams.close();
  }
}

@Module({})
export class UpstreamModule {
  static register(env: GatewayEnv): DynamicModule {
    const clients = ClientsModule.register([
      {
        name: TOKENS.directory,
        ...grpcClientOptions(CONTRACTS['prekey-directory'], env.PREKEY_DIRECTORY_ADDR),
      },
      { name: TOKENS.relay, ...grpcClientOptions(CONTRACTS['message-relay'], env.MESSAGE_RELAY_ADDR) },
      { name: TOKENS.presence, ...grpcClientOptions(CONTRACTS.presence, env.PRESENCE_ADDR) },
      { name: TOKENS.backupStore, ...grpcClientOptions(CONTRACTS['backup-store'], env.BACKUP_STORE_ADDR) },
      { name: TOKENS.keyVault, ...grpcClientOptions(CONTRACTS['key-vault'], env.KEY_VAULT_ADDR) },
    ]);
    return {
      module: UpstreamModule,
      global: true,
      imports: [clients],
      providers: [Upstream],
      exports: [Upstream],
    };
  }
}
