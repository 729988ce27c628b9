import { CallBatcher } from './call-batcher';

export interface GroupCommitLimits<T> {
  /** Most items in one flush (a caller's batch larger than this goes alone). */
  readonly maxItems: number;
  /** Most bytes in one flush, by `sizeOf` (a larger caller's batch goes alone). */
  readonly maxBytes: number;
  readonly sizeOf: (item: T) => number;
}

/**
 * Group commit: callers hand in small batches; one flush at a time carries as
 * many waiting batches as fit. It is a CallBatcher with one batch in flight
 * whose calls are the callers' batches: a caller alone is flushed at once, so
 * batching never adds latency when there is nothing to batch with; under load,
 * the batches that arrive while a flush is in flight go together in the next,
 * so one round trip serves many callers. A caller's batch is never split: its
 * promise settles with the one flush that carried it, all or nothing.
 */
export class GroupCommit<T> {
  private readonly batcher: CallBatcher<readonly T[], undefined>;

  constructor(flush: (items: T[]) => Promise<void>, limits: GroupCommitLimits<T>) {
    this.batcher = new CallBatcher(
      async (batches) => {
        await flush(batches.flat());
        return batches.map(() => ({ ok: undefined }));
      },
      {
        concurrency: 1,
        maxCalls: limits.maxItems,
        maxBytes: limits.maxBytes,
        countOf: (items) => items.length,
        sizeOf: (items) => items.reduce((total, item) => total + limits.sizeOf(item), 0),
      },
    );
  }

  /** Resolves once a flush carrying these items succeeded; rejects with its error if it failed. */
  add(items: readonly T[]): Promise<void> {
    if (items.length === 0) return Promise.resolve();
    return this.batcher.call(items);
  }

  /** Callers waiting for a flush, for metrics. */
  get backlog(): number {
    return this.batcher.backlog;
  }
}
