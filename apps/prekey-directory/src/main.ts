import { CONTRACTS } from '@sotto/contracts';
import { runService } from '@sotto/platform/grpc';
import { AppModule } from './app.module';
import { directoryEnv } from './env';

void runService({
  name: 'prekey-directory',
  contract: CONTRACTS['prekey-directory'],
  env: directoryEnv,
  module: (env) => AppModule.register(env),
});
