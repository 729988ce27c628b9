import { Inject, Injectable } from '@nestjs/common';
import { DirectoryServiceService } from '@sotto/contracts/generated/sotto/directory/v1/directory';
import { PresenceServiceService } from '@sotto/contracts/generated/sotto/presence/v1/presence';
import { UpstreamClients } from '@sotto/platform/grpc';
import { RELAY_ENV, type RelayEnv } from '../env';

/** The directory and presence, as the relay calls them. */
@Injectable()
export class Upstream extends UpstreamClients {
  readonly directory;
  readonly presence;

  constructor(@Inject(RELAY_ENV) env: RelayEnv) {
    super();
    this.directory = this.connect('prekey-directory', DirectoryServiceService, env.PREKEY_DIRECTORY_ADDR);
    this.presence = this.connect('presence', PresenceServiceService, env.PRESENCE_ADDR);
  }
}
