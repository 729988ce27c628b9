export interface RetryDelays {
  /** The wait before the first retry, before jitter. */
  readonly minMs: number;
  /** No wait is longer than this. */
  readonly maxMs: number;
}

/**
 * How long to wait before retry number `attempt` (1 for the first) of a
 * failed drain: `minMs` doubled for each earlier failure, capped at `maxMs`,
 * then a random point in its upper half ("equal jitter"), so the streams of
 * a gateway that lost the relay for a moment do not all come back at once,
 * yet none retries sooner than half its turn. `random` is in [0, 1).
 */
export function drainRetryDelayMs(
  attempt: number,
  delays: RetryDelays,
  random: () => number = Math.random,
): number {
  const exponent = Math.min(Math.max(attempt, 1) - 1, 30);
  const ceiling = Math.min(delays.maxMs, delays.minMs * 2 ** exponent);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
