import { Module } from '@nestjs/common';
import { MailboxModule } from '../mailbox/mailbox.module';
import { EnvelopeRouter } from './envelope-router';
import { FaultInjection } from './fault-injection';

@Module({ imports: [MailboxModule], providers: [FaultInjection, EnvelopeRouter], exports: [FaultInjection] })
export class RoutingModule {}
