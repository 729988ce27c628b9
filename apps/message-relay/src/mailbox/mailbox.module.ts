import { Module } from '@nestjs/common';
import { RELAY_ENV, type RelayEnv } from '../env';
import { MailboxMetrics } from './mailbox-metrics';
import { MAILBOX_OPTIONS, MailboxStore, type MailboxOptions } from './mailbox.store';

@Module({
  providers: [
    MailboxMetrics,
    {
      provide: MAILBOX_OPTIONS,
      inject: [RELAY_ENV],
      useFactory: (env: RelayEnv): MailboxOptions => ({
        envelopeTtlMs: env.MAILBOX_ENVELOPE_TTL_SECONDS * 1000,
        now: () => Date.now(),
        durability: {
          level: env.MAILBOX_DURABILITY,
          replicas: env.MAILBOX_DURABILITY_REPLICAS,
          timeoutMs: env.MAILBOX_DURABILITY_TIMEOUT_MS,
        },
      }),
    },
    MailboxStore,
  ],
  exports: [MailboxStore, MailboxMetrics],
})
export class MailboxModule {}
