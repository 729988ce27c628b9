import { Inject, Injectable, Module, type DynamicModule, type OnModuleInit } from '@nestjs/common';
import { ClientsModule, type ClientGrpc } from '@nestjs/microservices';
import { CONTRACTS } from '@sotto/contracts';
import type { DirectoryServiceClient } from '@sotto/contracts/generated/nest/sotto/directory/v1/directory';
import type { PresenceServiceClient } from '@sotto/contracts/generated/nest/sotto/presence/v1/presence';
import { grpcClientOptions } from '@sotto/platform/grpc';
import type { RelayEnv } from '../env';

const DIRECTORY = 'PREKEY_DIRECTORY';
const PRESENCE = 'PRESENCE';

/** The directory and presence, as the relay calls them. */
@Injectable()
export class Upstream implements OnModuleInit {
  directory!: DirectoryServiceClient;
  presence!: PresenceServiceClient;

  constructor(
    @Inject(DIRECTORY) private readonly directoryClient: ClientGrpc,
    @Inject(PRESENCE) private readonly presenceClient: ClientGrpc,
  ) {}

  onModuleInit(): void {
    this.directory = this.directoryClient.getService<DirectoryServiceClient>('DirectoryService');
    this.presence = this.presenceClient.getService<PresenceServiceClient>('PresenceService');
  }
}

@Module({})
export class UpstreamModule {
  static register(env: RelayEnv): DynamicModule {
    return {
      module: UpstreamModule,
      global: true,
      imports: [
        ClientsModule.register([
          { name: DIRECTORY, ...grpcClientOptions(CONTRACTS['prekey-directory'], env.PREKEY_DIRECTORY_ADDR) },
          { name: PRESENCE, ...grpcClientOptions(CONTRACTS.presence, env.PRESENCE_ADDR) },
        ]),
      ],
      providers: [Upstream],
      exports: [Upstream],
    };
  }
}
