import { Module } from '@nestjs/common';
import { LimitsModule } from '../limits/limits.module';
import { DeliveryMetrics } from './delivery-metrics';
import { DeliveryStreams } from './delivery-streams';
import { LastSeen } from './last-seen';
import { MessagingController } from './messaging.controller';
import { MultiRecipientSends } from './multi-recipient-sends';
import { PresenceHeartbeat } from './presence-heartbeat';
import { SealedSends } from './sealed-sends';
import { Sends } from './sends';
import { StreamSendMetrics } from './stream-send-metrics';

@Module({
  // Sends on a Connect stream are admitted by Send's own call limits.
  imports: [LimitsModule],
  controllers: [MessagingController],
  providers: [
    DeliveryMetrics,
    DeliveryStreams,
    LastSeen,
    MultiRecipientSends,
    PresenceHeartbeat,
    SealedSends,
    Sends,
    StreamSendMetrics,
  ],
})
export class MessagingModule {}
