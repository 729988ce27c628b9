import { Module } from '@nestjs/common';
import { DeliveryMetrics } from './delivery-metrics';
import { DeliveryStreams } from './delivery-streams';
import { MessagingController } from './messaging.controller';
import { PresenceHeartbeat } from './presence-heartbeat';

@Module({
  controllers: [MessagingController],
  providers: [DeliveryMetrics, DeliveryStreams, PresenceHeartbeat],
})
export class MessagingModule {}
