import { CONTRACTS } from '@sotto/contracts';
import { runService } from '@sotto/platform/grpc';
import { AppModule } from './app.module';
import { vaultEnv } from './env';

void runService({
  name: 'key-vault',
  contract: CONTRACTS['key-vault'],
  env: vaultEnv,
  module: (env) => AppModule.register(env),
});
