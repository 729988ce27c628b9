/**
 * Gathers what callers hand in during one turn of the event loop into one
 * flush, run once the turn's I/O callbacks and promise jobs are done
 * (setImmediate). It suits callers that start together, such as the
 * partitions of one Kafka fetch routed side by side, or the Sends of one
 * batched call: each would otherwise pay a round trip to a store of its own.
 * The flush answers each item in order; a caller gets the answers to its own
 * items, or the flush's error.
 */
export class SameTurnBatch<T, R> {
  private pending: {
    readonly items: readonly T[];
    settle: (results: Promise<readonly R[]>, from: number) => void;
  }[] = [];

  constructor(private readonly flush: (items: T[]) => Promise<readonly R[]>) {}

  /** The flush's answers to these items, in order; rejects with its error. */
  add(items: readonly T[]): Promise<R[]> {
    if (items.length === 0) return Promise.resolve([]);
    return new Promise<R[]>((resolve, reject) => {
      if (this.pending.length === 0) setImmediate(() => this.run());
      this.pending.push({
        items,
        settle: (results, from) =>
          void results
            .then((all) => {
              if (all.length < from + items.length) {
                throw new Error(`a batch of ${all.length} answers for more items than that`);
              }
              resolve(all.slice(from, from + items.length));
            })
            .catch(reject),
      });
    });
  }

  private run(): void {
    const callers = this.pending;
    this.pending = [];
    const results = (async () => this.flush(callers.flatMap((caller) => caller.items)))();
    let from = 0;
    for (const caller of callers) {
      caller.settle(results, from);
      from += caller.items.length;
    }
  }
}
