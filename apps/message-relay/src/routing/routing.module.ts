import { Module } from '@nestjs/common';
import { MailboxModule } from '../mailbox/mailbox.module';
import { EnvelopeRouter } from './envelope-router';
import { FaultInjection } from './fault-injection';
import { MailPushes } from './mail-pushes';
import { RoutingMetrics } from './routing-metrics';

@Module({
  imports: [MailboxModule],
  providers: [FaultInjection, RoutingMetrics, MailPushes, EnvelopeRouter],
  exports: [FaultInjection],
})
export class RoutingModule {}
