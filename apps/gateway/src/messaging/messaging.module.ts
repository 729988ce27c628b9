import { Module } from '@nestjs/common';
import { DeliveryStreams } from './delivery-streams';
import { MessagingController } from './messaging.controller';

@Module({ controllers: [MessagingController], providers: [DeliveryStreams] })
export class MessagingModule {}
