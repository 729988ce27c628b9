import { setFlagsFromString } from 'node:v8';
import { CONTRACTS } from '@sotto/contracts';
import { runService } from '@sotto/platform/grpc';
import { AppModule } from './app.module';
import { gatewayEnv } from './env';

void runService({
  name: 'gateway',
  contract: CONTRACTS.gateway,
  env: gatewayEnv,
  module: (env) => {
    // Before the gateway holds anything: V8 reads the flag at each full collection.
    if (env.GATEWAY_HEAP_GROWING_PERCENT > 0) {
      setFlagsFromString(`--heap-growing-percent=${env.GATEWAY_HEAP_GROWING_PERCENT}`);
    }
    return AppModule.register(env);
  },
  publicApi: true,
});
