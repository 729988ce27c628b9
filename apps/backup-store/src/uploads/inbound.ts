import type { Observable, Subscription } from 'rxjs';

/** The part of a gRPC server stream that reads from the network: Node's Readable flow control. */
export interface Pausable {
  pause(): unknown;
  resume(): unknown;
}

/** Messages queued before the network is paused; each is at most one chunk. */
const HIGH_WATER = 4;

/**
 * A client stream's messages, pulled one at a time. NestJS pushes messages
 * as fast as they arrive; pausing the call while messages wait lets HTTP/2
 * flow control slow the client down to the pace of the disk or S3, so a
 * large upload never piles up in memory.
 */
export class Inbound<T> {
  private readonly queue: T[] = [];
  private ended = false;
  private failure: unknown;
  private wake: (() => void) | undefined;
  private readonly endListeners: (() => void)[] = [];
  private readonly subscription: Subscription;
  private readonly cancellation = new AbortController();

  constructor(
    source: Observable<T>,
    private readonly call: Pausable | undefined,
  ) {
    this.subscription = source.subscribe({
      next: (message) => {
        this.queue.push(message);
        if (this.queue.length >= HIGH_WATER) this.call?.pause();
        this.notify();
      },
      error: (error: unknown) => {
        this.failure = error;
        this.end();
      },
      complete: () => this.end(),
    });
  }

  /** The next message, or undefined once the client finished or the stream was cancelled. */
  async next(): Promise<T | undefined> {
    for (;;) {
      const message = this.queue.shift();
      if (message !== undefined) {
        if (this.queue.length === 0) this.call?.resume();
        return message;
      }
      if (this.ended) {
        if (this.failure !== undefined) throw this.failure as Error;
        return undefined;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** Aborts once the stream is cancelled: whatever waits on its behalf can stop. */
  get signal(): AbortSignal {
    return this.cancellation.signal;
  }

  /** Stops taking messages: the client went away, or a newer stream took over. */
  cancel(): void {
    this.cancellation.abort();
    this.queue.length = 0;
    this.subscription.unsubscribe();
    this.end();
  }

  /** Calls `listener` once the client finished sending, failed, or the stream was cancelled. */
  onEnd(listener: () => void): void {
    if (this.ended) listener();
    else this.endListeners.push(listener);
  }

  private end(): void {
    if (!this.ended) {
      this.ended = true;
      this.endListeners.splice(0).forEach((listener) => listener());
    }
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
