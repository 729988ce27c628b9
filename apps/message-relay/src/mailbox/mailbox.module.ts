import { Module } from '@nestjs/common';
import { MailboxStore } from './mailbox.store';

@Module({ providers: [MailboxStore], exports: [MailboxStore] })
export class MailboxModule {}
