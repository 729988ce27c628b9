/** One call's answer inside a batch: what it returned, or the error it alone would have failed with. */
export type Outcome<Response> = { readonly ok: Response } | { readonly error: Error };

export interface CallBatcherLimits<Request> {
  /** Batches in flight at once; calls made while all are in flight wait and go together in the next. */
  readonly concurrency: number;
  /** Most calls in one batch, each counted by `countOf` (a call that counts for more goes alone). */
  readonly maxCalls: number;
  /** Most bytes in one batch, by `sizeOf` (a call larger than this goes alone). */
  readonly maxBytes: number;
  readonly sizeOf: (request: Request) => number;
  /** How many of `maxCalls` one call takes: 1 unless given (a call carrying several items may count each). */
  readonly countOf?: (request: Request) => number;
}

interface Waiting<Request, Response> {
  readonly request: Request;
  readonly count: number;
  readonly bytes: number;
  readonly resolve: (response: Response) => void;
  readonly reject: (error: Error) => void;
}

/**
 * Gathers the calls made to another service into batch calls, as a group
 * commit does: while fewer than `concurrency` batches are in flight a call
 * goes at once (alone, when nothing else is waiting), so batching adds no
 * latency to a quiet service; under load the calls made meanwhile go
 * together, and one round trip and one request's fixed costs serve them all.
 * Each call settles with its own outcome; a batch call that fails as a whole
 * fails every call in it with that error.
 */
export class CallBatcher<Request, Response> {
  private waiting: Waiting<Request, Response>[] = [];
  private inFlight = 0;

  constructor(
    private readonly send: (requests: Request[]) => Promise<readonly Outcome<Response>[]>,
    private readonly limits: CallBatcherLimits<Request>,
  ) {}

  call(request: Request): Promise<Response> {
    return new Promise<Response>((resolve, reject) => {
      this.waiting.push({
        request,
        count: this.limits.countOf?.(request) ?? 1,
        bytes: this.limits.sizeOf(request),
        resolve,
        reject,
      });
      this.next();
    });
  }

  /** Calls waiting for a batch, for metrics. */
  get backlog(): number {
    return this.waiting.length;
  }

  private next(): void {
    while (this.inFlight < this.limits.concurrency && this.waiting.length > 0) {
      const batch = this.take();
      this.inFlight += 1;
      void this.run(batch).finally(() => {
        this.inFlight -= 1;
        this.next();
      });
    }
  }

  private async run(batch: Waiting<Request, Response>[]): Promise<void> {
    let outcomes: readonly Outcome<Response>[];
    try {
      outcomes = await this.send(batch.map((each) => each.request));
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      for (const each of batch) each.reject(failure);
      return;
    }
    batch.forEach((each, index) => {
      const outcome = outcomes[index];
      if (outcome === undefined) {
        each.reject(new Error(`batch answered ${outcomes.length} of ${batch.length} calls`));
      } else if ('ok' in outcome) {
        each.resolve(outcome.ok);
      } else {
        each.reject(outcome.error);
      }
    });
  }

  /** The oldest waiting calls that fit the limits together, at least one. */
  private take(): Waiting<Request, Response>[] {
    let taken = 0;
    let count = 0;
    let bytes = 0;
    for (const each of this.waiting) {
      const fits = count + each.count <= this.limits.maxCalls && bytes + each.bytes <= this.limits.maxBytes;
      if (taken > 0 && !fits) break;
      taken += 1;
      count += each.count;
      bytes += each.bytes;
    }
    return this.waiting.splice(0, taken);
  }
}
