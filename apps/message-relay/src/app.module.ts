import { Global, Module, type DynamicModule } from '@nestjs/common';
import { KafkaModule } from '@sotto/platform/kafka';
import { RedisModule } from '@sotto/platform/redis';
import { RELAY_ENV, type RelayEnv } from './env';
import { MailboxModule } from './mailbox/mailbox.module';
import { RelayController } from './relay.controller';
import { RoutingModule } from './routing/routing.module';
import { SendModule } from './send/send.module';
import { Upstream } from './upstream/upstream';

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
        MailboxModule,
        RoutingModule,
      ],
      controllers: [RelayController],
      providers: [{ provide: RELAY_ENV, useValue: env }, Upstream],
      exports: [RELAY_ENV, Upstream],
    };
  }
}
