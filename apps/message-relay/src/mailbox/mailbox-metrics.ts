import { Injectable } from '@nestjs/common';
import { Counter, Registry } from 'prom-client';

export type MailboxCap = 'envelopes' | 'bytes';

/** What SREs watch on mailboxes: envelopes dropped unread after their 30 days, and full ones. */
@Injectable()
export class MailboxMetrics {
  private readonly expiredEnvelopes: Counter;
  private readonly fullRefusals: Counter<'cap'>;

  /** The service's registry, which runService serves on /metrics. */
  constructor(registry: Registry) {
    const registers = [registry];
    this.expiredEnvelopes = new Counter({
      name: 'sotto_mailbox_expired_envelopes_total',
      help: 'Envelopes dropped from a mailbox unread because their time to live ran out.',
      registers,
    });
    this.fullRefusals = new Counter({
      name: 'sotto_mailbox_full_refusals_total',
      help: 'Sends refused with RESOURCE_EXHAUSTED because a destination mailbox was full, by the cap it reached.',
      labelNames: ['cap'],
      registers,
    });
  }

  expired(count: number): void {
    if (count > 0) this.expiredEnvelopes.inc(count);
  }

  refused(cap: MailboxCap): void {
    this.fullRefusals.inc({ cap });
  }
}
