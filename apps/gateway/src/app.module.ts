import { Module, type DynamicModule } from '@nestjs/common';
import { RedisModule } from '@sotto/platform/redis';
import type { GatewayEnv } from './env';
import { UpstreamModule } from './upstream/upstream.module';

@Module({})
export class AppModule {
  static register(env: GatewayEnv): DynamicModule {
    return {
      module: AppModule,
      imports: [RedisModule.forRoot({ url: env.REDIS_URL }), UpstreamModule.register(env)],
    };
  }
}
