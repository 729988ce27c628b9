import type { TopicPartitionOffsetAndMetadata } from 'kafkajs';

/** Where routing has got to in one partition: the offset of the next record to read. */
export interface RoutedUpTo {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

/**
 * Commits routed offsets to Kafka at most once per interval, each commit
 * carrying the latest offset of every partition routed since the last one.
 * An offset is handed in only once its records are in the mailboxes, so what
 * is committed is always routed; what a crash loses is at most an interval of
 * commits, whose records are read again and inserted again as no-ops (the
 * mailbox script knows each GUID). Committing after every batch instead costs
 * the broker a request per batch, which at small batches was a fifth of
 * Kafka's CPU per message.
 */
export class OffsetCommits {
  private readonly pending = new Map<string, RoutedUpTo>();
  private timer?: NodeJS.Timeout;
  private committing?: Promise<void>;
  private lastCommitAtMs = 0;

  constructor(
    private readonly commit: (offsets: TopicPartitionOffsetAndMetadata[]) => Promise<void>,
    private readonly intervalMs: number,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** Records that everything in the partition before `offset` is routed. */
  routed(upTo: RoutedUpTo): void {
    this.pending.set(`${upTo.topic}/${upTo.partition}`, upTo);
    this.schedule();
  }

  private schedule(): void {
    if (this.timer !== undefined || this.committing !== undefined) return;
    const wait = Math.max(0, this.lastCommitAtMs + this.intervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, wait);
  }

  /** Commits what is pending now, and waits for it; for shutdown and tests. */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.committing) await this.committing;
    if (this.pending.size === 0) return;
    const offsets = [...this.pending.values()];
    this.pending.clear();
    this.lastCommitAtMs = Date.now();
    // A failed commit is not tried again: the partition's next batch commits a later offset, and
    // until then a crash or a rebalance only has those records read again.
    this.committing = this.commit(
      offsets.map(({ topic, partition, offset }) => ({ topic, partition, offset })),
    )
      .catch(this.onError)
      .finally(() => {
        this.committing = undefined;
        if (this.pending.size > 0) this.schedule();
      });
    await this.committing;
  }
}
