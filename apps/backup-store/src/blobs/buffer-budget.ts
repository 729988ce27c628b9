/** Bytes held for one buffer; give them back with `release`, once (more calls do nothing). */
export interface Reservation {
  readonly bytes: number;
  release(): void;
}

/** What a budget tells the metrics: bytes reserved now, callers waiting now, and how each wait ended. */
export interface BudgetObserver {
  reserved(bytes: number): void;
  queued(waiting: number): void;
  waited(outcome: 'granted' | 'refused' | 'cancelled'): void;
}

/** No room came free within the budget's wait: the caller refuses, and the client comes back later. */
export class BufferBudgetExhaustedError extends Error {
  constructor(
    readonly what: string,
    readonly capacity: number,
    readonly waitedMs: number,
  ) {
    super(`the ${what} (${capacity} bytes) stayed full for ${waitedMs} ms`);
    this.name = 'BufferBudgetExhaustedError';
  }
}

/** The wait for room was given up by the caller (its stream was cancelled or taken over). */
export class BufferWaitCancelledError extends Error {
  constructor(readonly what: string) {
    super(`the wait for room in the ${what} was cancelled`);
    this.name = 'BufferWaitCancelledError';
  }
}

interface Waiter {
  readonly bytes: number;
  readonly grant: (reservation: Reservation) => void;
}

const NO_OBSERVER: BudgetObserver = {
  reserved: () => undefined,
  queued: () => undefined,
  waited: () => undefined,
};

/**
 * A process-wide cap on bytes held in buffers. A buffer reserves its bytes
 * before it holds them; when the cap is reached, callers wait their turn
 * (first come, first served: a large reservation is not overtaken forever by
 * small ones) for at most `maxWaitMs`, then get BufferBudgetExhaustedError.
 */
export class BufferBudget {
  private usedBytes = 0;
  private peakBytes = 0;
  private readonly queue: Waiter[] = [];

  constructor(
    /** Names the budget in errors, e.g. "S3 upload buffer". */
    readonly what: string,
    readonly capacity: number,
    readonly maxWaitMs: number,
    private readonly observer: BudgetObserver = NO_OBSERVER,
  ) {
    if (!Number.isSafeInteger(capacity) || capacity <= 0) {
      throw new RangeError(`${what}: capacity must be a positive whole number of bytes, got ${capacity}`);
    }
    if (!Number.isFinite(maxWaitMs) || maxWaitMs < 0) {
      throw new RangeError(
        `${what}: the wait must be a non-negative number of milliseconds, got ${maxWaitMs}`,
      );
    }
  }

  /** Bytes reserved now. */
  get used(): number {
    return this.usedBytes;
  }

  /** The most bytes ever reserved at once. */
  get peak(): number {
    return this.peakBytes;
  }

  /** Callers waiting for room. */
  get waiting(): number {
    return this.queue.length;
  }

  /**
   * Reserves `bytes`, at once when there is room and nobody waits before this
   * caller, else after waiting up to `maxWaitMs`. Rejects with
   * BufferBudgetExhaustedError when the wait runs out, and with
   * BufferWaitCancelledError when `signal` aborts first; either way nothing
   * stays reserved.
   */
  reserve(bytes: number, signal?: AbortSignal): Promise<Reservation> {
    if (!Number.isSafeInteger(bytes) || bytes <= 0 || bytes > this.capacity) {
      return Promise.reject(
        new RangeError(`${this.what}: cannot reserve ${bytes} bytes of ${this.capacity}`),
      );
    }
    if (signal?.aborted) return Promise.reject(new BufferWaitCancelledError(this.what));
    if (this.queue.length === 0 && this.usedBytes + bytes <= this.capacity) {
      return Promise.resolve(this.take(bytes));
    }
    return new Promise<Reservation>((resolve, reject) => {
      const settle = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', cancel);
      };
      const leave = (): void => {
        const index = this.queue.indexOf(waiter);
        if (index >= 0) this.queue.splice(index, 1);
        this.observer.queued(this.queue.length);
        settle();
        // Those behind this caller may fit now.
        this.grantWaiting();
      };
      const waiter: Waiter = {
        bytes,
        grant: (reservation) => {
          settle();
          this.observer.waited('granted');
          resolve(reservation);
        },
      };
      const timer = setTimeout(() => {
        leave();
        this.observer.waited('refused');
        reject(new BufferBudgetExhaustedError(this.what, this.capacity, this.maxWaitMs));
      }, this.maxWaitMs);
      const cancel = (): void => {
        leave();
        this.observer.waited('cancelled');
        reject(new BufferWaitCancelledError(this.what));
      };
      signal?.addEventListener('abort', cancel, { once: true });
      this.queue.push(waiter);
      this.observer.queued(this.queue.length);
    });
  }

  private take(bytes: number): Reservation {
    this.usedBytes += bytes;
    this.peakBytes = Math.max(this.peakBytes, this.usedBytes);
    this.observer.reserved(this.usedBytes);
    let released = false;
    return {
      bytes,
      release: () => {
        if (released) return;
        released = true;
        this.usedBytes -= bytes;
        this.observer.reserved(this.usedBytes);
        this.grantWaiting();
      },
    };
  }

  /** Grants waiters in order while the first of them fits. */
  private grantWaiting(): void {
    for (let next = this.queue[0]; next; next = this.queue[0]) {
      if (this.usedBytes + next.bytes > this.capacity) return;
      this.queue.shift();
      this.observer.queued(this.queue.length);
      next.grant(this.take(next.bytes));
    }
  }
}
