import { Counter, type Registry } from 'prom-client';
import { DependencyUnavailableError } from '@sotto/platform/grpc';
import type { Redis } from './redis.module';
import { RedisScript } from './scripts';
import { isCommandError } from './slots';

/**
 * A token bucket: it holds at most `burst` tokens and refills at `burst`
 * tokens per `periodMs`, continuously. A caller may spend the whole bucket at
 * once, then one token every periodMs / burst. "60 per minute" is
 * `{ burst: 60, periodMs: 60_000 }`: 60 at once, then one a second.
 */
export interface RateLimit {
  readonly burst: number;
  readonly periodMs: number;
}

export type RateLimitResult =
  | { readonly allowed: true }
  /** Too few tokens; enough will be back in `retryAfterMs`. */
  | { readonly allowed: false; readonly retryAfterMs: number };

/**
 * Refill by the time elapsed since the bucket was last written, then take
 * ARGV[4] tokens if there are that many (a negative count gives tokens back,
 * never above the burst). One script, so concurrent takers never spend more
 * than the bucket holds. A bucket missing is full: a full one is deleted, and
 * any other expires when it would be full again, so idle subjects cost nothing.
 * The clock is the caller's (every replica's is NTP-synchronised); a write
 * never moves `at` backwards, so a replica whose clock is behind refills
 * nothing rather than twice.
 */
const TAKE = new RedisScript(
  `
local burst = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local take = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
if now > at then
  tokens = math.min(burst, tokens + (now - at) * burst / period)
  at = now
end
if take > tokens then
  return {0, math.ceil((take - tokens) * period / burst)}
end
tokens = math.min(burst, tokens - take)
if tokens >= burst then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', at)
  redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * period / burst))
end
return {1, 0}
`,
  1,
);

/**
 * How long a bucket may take to answer before the call is refused as
 * unavailable: a take is one short script, well under a millisecond when
 * Redis is well, and a call must not hang past its deadline when it is not.
 */
export const RATE_LIMIT_TIMEOUT_MS = 1_000;

/** A connection that was up and is lost: ioredis is trying again, or gave up. */
const LOST = new Set(['reconnecting', 'close', 'end']);

export interface RateLimiterOptions {
  /** False turns every limit off: every take is allowed, nothing is written (SOTTO_RATE_LIMITS=off). */
  readonly enabled?: boolean;
  /** Milliseconds since the epoch; tests pass their own. */
  readonly clock?: () => number;
  /** Where `sotto_rate_limit_hits_total` is registered: the service's registry. */
  readonly registry?: Registry;
  /** RATE_LIMIT_TIMEOUT_MS by default. */
  readonly timeoutMs?: number;
}

const HITS = 'sotto_rate_limit_hits_total';

/**
 * Token buckets in Redis, shared by every replica: one per limit and subject
 * (an address, a device, an account). Every refusal is counted in
 * `sotto_rate_limit_hits_total` by limit name, never by subject.
 *
 * Without Redis nothing is admitted: a take (or refund) whose connection is
 * lost, or that gets no answer within `timeoutMs`, fails with
 * DependencyUnavailableError, which services answer with UNAVAILABLE. A limit
 * that let calls through while Redis is down would let a flood through
 * exactly when the platform is weakest.
 */
export class RateLimiter {
  readonly enabled: boolean;
  private readonly clock: () => number;
  private readonly timeoutMs: number;
  private readonly hits: Counter<'limit'> | undefined;

  constructor(
    private readonly redis: Redis,
    options: RateLimiterOptions = {},
  ) {
    this.enabled = options.enabled ?? true;
    this.clock = options.clock ?? Date.now;
    this.timeoutMs = options.timeoutMs ?? RATE_LIMIT_TIMEOUT_MS;
    const { registry } = options;
    this.hits =
      registry === undefined
        ? undefined
        : ((registry.getSingleMetric(HITS) as Counter<'limit'> | undefined) ??
          new Counter({
            name: HITS,
            help: 'Requests refused (or, for one-time prekeys, served without one) because a rate limit was reached, by limit.',
            labelNames: ['limit'],
            registers: [registry],
          }));
  }

  /**
   * Takes `tokens` (1 by default) from `subject`'s bucket of the limit called
   * `name`; refused, takes nothing and says when there will be enough. `name`
   * is also the metric's label: a fixed word such as "send_per_device".
   */
  async take(name: string, subject: string, limit: RateLimit, tokens = 1): Promise<RateLimitResult> {
    if (!this.enabled) return { allowed: true };
    if (tokens > limit.burst) throw new Error(`${name}: cannot take ${tokens} tokens of ${limit.burst}`);
    const [allowed, retryAfterMs] = await this.run(name, subject, limit, tokens);
    if (allowed === 1) return { allowed: true };
    this.hits?.inc({ limit: name });
    return { allowed: false, retryAfterMs };
  }

  /**
   * Gives back tokens taken, never filling the bucket past its burst: for a
   * caller that takes before it knows whether it should (so that attempts in
   * flight at once hold their places) and then learns it should not.
   */
  async refund(name: string, subject: string, limit: RateLimit, tokens = 1): Promise<void> {
    if (!this.enabled) return;
    await this.run(name, subject, limit, -tokens);
  }

  private async run(
    name: string,
    subject: string,
    limit: RateLimit,
    tokens: number,
  ): Promise<[number, number]> {
    // Fail at once rather than queue behind a reconnect: under a flood the queue would only grow.
    if (LOST.has(this.redis.status)) throw unavailable(`Redis is not connected (${this.redis.status})`);
    // The subject in braces: on Redis Cluster, one subject's buckets share a slot.
    const key = `sotto:bucket:${name}:{${subject}}`;
    const taken = TAKE.run(this.redis, [key], [limit.burst, limit.periodMs, this.clock(), tokens]);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () => reject(unavailable(`Redis did not answer within ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
    });
    try {
      return (await Promise.race([taken, timedOut])) as [number, number];
    } catch (error) {
      // Redis answered with an error that is no outage (a cluster failing over answers CLUSTERDOWN,
      // TRYAGAIN…): the script or the key is wrong, which is a bug.
      if (error instanceof DependencyUnavailableError || isCommandError(error)) throw error;
      throw unavailable(`Redis failed: ${(error as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }
}

function unavailable(problem: string): DependencyUnavailableError {
  return new DependencyUnavailableError('rate limits', problem);
}
