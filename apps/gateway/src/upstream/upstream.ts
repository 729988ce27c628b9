import { Inject, Injectable } from '@nestjs/common';
import { BackupStoreServiceService } from '@sotto/contracts/generated/sotto/backup/v1/backup';
import { DirectoryServiceService } from '@sotto/contracts/generated/sotto/directory/v1/directory';
import { PresenceServiceService } from '@sotto/contracts/generated/sotto/presence/v1/presence';
import { RelayServiceService } from '@sotto/contracts/generated/sotto/relay/v1/relay';
import { KeyVaultServiceService } from '@sotto/contracts/generated/sotto/vault/v1/vault';
import { UpstreamClients } from '@sotto/platform/grpc';
import { GATEWAY_ENV, type GatewayEnv } from '../env';

/**
 * The internal services behind the gateway. Unary calls return Promises
 * whose errors are already what the client should see; the backup store's
 * byte streams are grpc-js streams, which pause and resume, so a backup
 * passes through with bounded memory whichever side is slower.
 */
@Injectable()
export class Upstream extends UpstreamClients {
  readonly directory;
  readonly relay;
  readonly presence;
  readonly backupStore;
  readonly keyVault;

  constructor(@Inject(GATEWAY_ENV) env: GatewayEnv) {
    super();
    this.directory = this.connect('prekey-directory', DirectoryServiceService, env.PREKEY_DIRECTORY_ADDR);
    this.relay = this.connect('message-relay', RelayServiceService, env.MESSAGE_RELAY_ADDR);
    this.presence = this.connect('presence', PresenceServiceService, env.PRESENCE_ADDR);
    this.backupStore = this.connect('backup-store', BackupStoreServiceService, env.BACKUP_STORE_ADDR);
    this.keyVault = this.connect('key-vault', KeyVaultServiceService, env.KEY_VAULT_ADDR);
  }
}
