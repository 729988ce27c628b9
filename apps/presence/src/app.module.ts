import { Module, type DynamicModule } from '@nestjs/common';
import { RedisModule, redisConnection } from '@sotto/platform/redis';
import type { PresenceEnv } from './env';
import { StreamsModule } from './streams/streams.module';

@Module({})
export class AppModule {
  static register(env: PresenceEnv): DynamicModule {
    return {
      module: AppModule,
      imports: [RedisModule.forRoot(redisConnection(env)), StreamsModule.register(env.PRESENCE_TTL_MS)],
    };
  }
}
