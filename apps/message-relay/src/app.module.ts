import { Global, Module, type DynamicModule } from '@nestjs/common';
import { KafkaModule } from '@sotto/platform/kafka';
import { RedisModule } from '@sotto/platform/redis';
import { RELAY_ENV, type RelayEnv } from './env';
import { SendModule } from './send/send.module';

@Global()
@Module({})
export class AppModule {
  static register(env: RelayEnv): DynamicModule {
    return {
      module: AppModule,
      imports: [
        KafkaModule.forRoot({ brokers: env.KAFKA_BROKERS, clientId: 'sotto-message-relay' }),
        RedisModule.forRoot({ url: env.REDIS_URL }),
        SendModule,
      ],
      providers: [{ provide: RELAY_ENV, useValue: env }],
      exports: [RELAY_ENV],
    };
  }
}
