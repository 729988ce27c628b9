import { CONTRACTS } from '@sotto/contracts';
import { runService } from '@sotto/platform/grpc';
import { AppModule } from './app.module';
import { presenceEnv } from './env';

void runService({
  name: 'presence',
  contract: CONTRACTS.presence,
  env: presenceEnv,
  module: (env) => AppModule.register(env),
});
