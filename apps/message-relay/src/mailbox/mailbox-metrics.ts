import { Injectable } from '@nestjs/common';
import { Counter, Histogram, Registry } from 'prom-client';

export type MailboxCap = 'envelopes' | 'bytes';

/** Envelopes a mailbox holds, as bucket bounds: from a device that reads to one near the default cap. */
export const MAILBOX_DEPTH_BUCKETS = [0, 1, 10, 100, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000];

/**
 * What SREs watch on mailboxes: envelopes dropped unread after their 30 days, full ones, and how
 * deep the mailboxes that Sends go to are.
 */
@Injectable()
export class MailboxMetrics {
  private readonly expiredEnvelopes: Counter;
  private readonly fullRefusals: Counter<'cap'>;
  private readonly depth: Histogram;

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
    this.depth = new Histogram({
      name: 'sotto_mailbox_depth_envelopes',
      help: 'Undelivered envelopes in each destination mailbox as a Send found it, before adding to it.',
      buckets: MAILBOX_DEPTH_BUCKETS,
      registers,
    });
  }

  /** The depth of a mailbox a Send is about to add to. */
  found(envelopes: number): void {
    this.depth.observe(envelopes);
  }

  expired(count: number): void {
    if (count > 0) this.expiredEnvelopes.inc(count);
  }

  refused(cap: MailboxCap): void {
    this.fullRefusals.inc({ cap });
  }
}
