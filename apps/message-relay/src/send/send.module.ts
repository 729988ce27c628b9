import { Module } from '@nestjs/common';
import { MailboxModule } from '../mailbox/mailbox.module';
import { RoutingModule } from '../routing/routing.module';
import { DeviceLists } from './device-lists';
import { EnvelopeLog } from './envelope-log';
import { SendService } from './send.service';

@Module({
  imports: [RoutingModule, MailboxModule],
  providers: [DeviceLists, EnvelopeLog, SendService],
  exports: [SendService],
})
export class SendModule {}
