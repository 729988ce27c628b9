import { Module } from '@nestjs/common';
import { RoutingModule } from '../routing/routing.module';
import { EnvelopeLog } from './envelope-log';
import { SendService } from './send.service';

@Module({ imports: [RoutingModule], providers: [EnvelopeLog, SendService], exports: [SendService] })
export class SendModule {}
