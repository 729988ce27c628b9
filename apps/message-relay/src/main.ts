import { CONTRACTS } from '@sotto/contracts';
import { runService } from '@sotto/platform/grpc';
import { AppModule } from './app.module';
import { relayEnv } from './env';

void runService({
  name: 'message-relay',
  contract: CONTRACTS['message-relay'],
  env: relayEnv,
  module: (env) => AppModule.register(env),
});
