/**
 * Gathers what callers hand in during one turn of the event loop into one
 * flush, run once the turn's I/O callbacks and promise jobs are done
 * (setImmediate). It suits callers that start together, such as the
 * partitions of one Kafka fetch routed side by side: each would otherwise pay
 * a round trip to every store of its own. A caller's items stay together and
 * in order; each caller learns the one flush's outcome, all or nothing.
 */
export class SameTurnBatch<T, Outcome> {
  private pending: { readonly items: readonly T[]; settle: (outcome: Promise<Outcome>) => void }[] = [];

  constructor(private readonly flush: (items: T[]) => Promise<Outcome>) {}

  /** Resolves with the outcome of the flush that carried these items; rejects with its error. */
  add(items: readonly T[]): Promise<Outcome> {
    return new Promise<Outcome>((resolve, reject) => {
      if (this.pending.length === 0) setImmediate(() => this.run());
      this.pending.push({ items, settle: (outcome) => void outcome.then(resolve, reject) });
    });
  }

  private run(): void {
    const callers = this.pending;
    this.pending = [];
    const outcome = (async () => this.flush(callers.flatMap((caller) => caller.items)))();
    for (const caller of callers) caller.settle(outcome);
  }
}
