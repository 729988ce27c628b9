import { CONTRACTS } from '@sotto/contracts';
import { runService } from '@sotto/platform/grpc';
import { AppModule } from './app.module';
import { gatewayEnv } from './env';

void runService({
  name: 'gateway',
  contract: CONTRACTS.gateway,
  env: gatewayEnv,
  module: (env) => AppModule.register(env),
  publicApi: true,
});
