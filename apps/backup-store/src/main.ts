import { CONTRACTS } from '@sotto/contracts';
import { runService } from '@sotto/platform/grpc';
import { AppModule } from './app.module';
import { backupEnv } from './env';

void runService({
  name: 'backup-store',
  contract: CONTRACTS['backup-store'],
  env: backupEnv,
  module: (env) => AppModule.register(env),
});
