/**
 * Group commit: callers hand in small batches; one flush at a time carries as
 * many waiting batches as fit. A caller alone is flushed at once, so batching
 * never adds latency when there is nothing to batch with; under load, the
 * batches that arrive while a flush is in flight go together in the next, so
 * one round trip serves many callers. A caller's batch is never split: its
 * promise settles with the one flush that carried it.
 */
export class GroupCommit<T> {
  private waiting: { items: readonly T[]; bytes: number; settle: (error?: Error) => void }[] = [];
  private flushing = false;

  constructor(
    private readonly flush: (items: T[]) => Promise<void>,
    private readonly limits: {
      /** Most items in one flush (a caller's batch larger than this goes alone). */
      readonly maxItems: number;
      /** Most bytes in one flush, by `sizeOf` (a larger caller's batch goes alone). */
      readonly maxBytes: number;
      readonly sizeOf: (item: T) => number;
    },
  ) {}

  /** Resolves once a flush carrying these items succeeded; rejects with its error if it failed. */
  add(items: readonly T[]): Promise<void> {
    if (items.length === 0) return Promise.resolve();
    const bytes = items.reduce((total, item) => total + this.limits.sizeOf(item), 0);
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({
        items,
        bytes,
        settle: (error?: Error) => (error === undefined ? resolve() : reject(error)),
      });
      if (!this.flushing) void this.next();
    });
  }

  /** Callers waiting for a flush, for metrics. */
  get backlog(): number {
    return this.waiting.length;
  }

  private async next(): Promise<void> {
    this.flushing = true;
    try {
      while (this.waiting.length > 0) {
        const batch = this.take();
        let failure: Error | undefined;
        try {
          await this.flush(batch.flatMap((each) => each.items));
        } catch (error) {
          failure = error instanceof Error ? error : new Error(`flush failed: ${String(error)}`);
        }
        for (const each of batch) each.settle(failure);
      }
    } finally {
      this.flushing = false;
    }
  }

  /** The oldest waiting batches that fit the limits together, at least one. */
  private take(): typeof this.waiting {
    let count = 0;
    let items = 0;
    let bytes = 0;
    for (const each of this.waiting) {
      const fits =
        items + each.items.length <= this.limits.maxItems && bytes + each.bytes <= this.limits.maxBytes;
      if (count > 0 && !fits) break;
      count++;
      items += each.items.length;
      bytes += each.bytes;
    }
    return this.waiting.splice(0, count);
  }
}
