import { Module, type DynamicModule } from '@nestjs/common';
import { ClientsModule } from '@nestjs/microservices';
import { CONTRACTS } from '@sotto/contracts';
import { grpcClientOptions } from '@sotto/platform/grpc';
import type { GatewayEnv } from '../env';

/** Injection tokens of the gRPC clients for the internal services the gateway fronts. */
export const UPSTREAM = {
  directory: 'PREKEY_DIRECTORY',
  relay: 'MESSAGE_RELAY',
  presence: 'PRESENCE',
  backupStore: 'BACKUP_STORE',
  keyVault: 'KEY_VAULT',
} as const;

@Module({})
export class UpstreamModule {
  static register(env: GatewayEnv): DynamicModule {
    const clients = ClientsModule.register([
      { name: UPSTREAM.directory, ...grpcClientOptions(CONTRACTS['prekey-directory'], env.PREKEY_DIRECTORY_ADDR) },
      { name: UPSTREAM.relay, ...grpcClientOptions(CONTRACTS['message-relay'], env.MESSAGE_RELAY_ADDR) },
      { name: UPSTREAM.presence, ...grpcClientOptions(CONTRACTS.presence, env.PRESENCE_ADDR) },
      { name: UPSTREAM.backupStore, ...grpcClientOptions(CONTRACTS['backup-store'], env.BACKUP_STORE_ADDR) },
      { name: UPSTREAM.keyVault, ...grpcClientOptions(CONTRACTS['key-vault'], env.KEY_VAULT_ADDR) },
    ]);
    return { module: UpstreamModule, global: true, imports: [clients], exports: [clients] };
  }
}
