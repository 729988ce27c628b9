import { Inject, Injectable, Module, type DynamicModule, type OnModuleInit } from '@nestjs/common';
import { ClientsModule, type ClientGrpc } from '@nestjs/microservices';
import { CONTRACTS } from '@sotto/contracts';
import type { DirectoryServiceClient } from '@sotto/contracts/generated/nest/sotto/directory/v1/directory';
import type { PresenceServiceClient } from '@sotto/contracts/generated/nest/sotto/presence/v1/presence';
import type { RelayServiceClient } from '@sotto/contracts/generated/nest/sotto/relay/v1/relay';
import { grpcClientOptions } from '@sotto/platform/grpc';
import type { GatewayEnv } from '../env';

const TOKENS = {
  directory: 'PREKEY_DIRECTORY',
  relay: 'MESSAGE_RELAY',
  presence: 'PRESENCE',
  backupStore: 'BACKUP_STORE',
  keyVault: 'KEY_VAULT',
} as const;

/** The internal services behind the gateway, as typed gRPC clients. */
@Injectable()
export class Upstream implements OnModuleInit {
  directory!: DirectoryServiceClient;
  relay!: RelayServiceClient;
  presence!: PresenceServiceClient;

  constructor(
    @Inject(TOKENS.directory) private readonly directoryClient: ClientGrpc,
    @Inject(TOKENS.relay) private readonly relayClient: ClientGrpc,
    @Inject(TOKENS.presence) private readonly presenceClient: ClientGrpc,
  ) {}

  onModuleInit(): void {
    this.directory = this.directoryClient.getService<DirectoryServiceClient>('DirectoryService');
    this.relay = this.relayClient.getService<RelayServiceClient>('RelayService');
    this.presence = this.presenceClient.getService<PresenceServiceClient>('PresenceService');
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
