import { Global, Module, type DynamicModule } from '@nestjs/common';
import { KafkaModule, kafkaConnection } from '@sotto/platform/kafka';
import { RedisModule, redisConnection } from '@sotto/platform/redis';
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
        KafkaModule.forRoot({ ...kafkaConnection(env), clientId: 'sotto-message-relay' }),
        RedisModule.forRoot(redisConnection(env)),
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
