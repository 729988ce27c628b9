import { z } from 'zod';

/** A rate limit as the environment writes it: a bucket of `burst` tokens that refills in `periodMs`. */
export interface Rate {
  readonly burst: number;
  readonly periodMs: number;
}

const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const RATE = /^([1-9]\d{0,8})\/([1-9]\d{0,5})?(s|m|h|d)$/;

/**
 * "60/1m", "20/1h", "5/d": at most that many at once, and that many again
 * over the period (one every period / count). Undefined if `text` is not
 * written so.
 */
export function parseRate(text: string): Rate | undefined {
  const match = RATE.exec(text.trim());
  if (!match) return undefined;
  const [, burst = '', count = '1', unit = 's'] = match;
  return { burst: Number(burst), periodMs: Number(count) * UNIT_MS[unit as keyof typeof UNIT_MS] };
}

/** How a rate is written back: the form parseRate reads, in the largest whole unit. */
export function formatRate({ burst, periodMs }: Rate): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (periodMs % UNIT_MS[unit] === 0) return `${burst}/${periodMs / UNIT_MS[unit]}${unit}`;
  }
  return `${burst}/${periodMs / 1000}s`;
}

/** A rate limit variable (see parseRate), with its default written the same way. */
export function rate(defaultRate: `${number}/${string}`) {
  const fallback = parseRate(defaultRate);
  if (fallback === undefined) throw new Error(`rate: bad default ${defaultRate}`);
  return z
    .string()
    .transform((value, context) => {
      const parsed = parseRate(value);
      if (parsed === undefined) {
        context.addIssue({
          code: 'custom',
          message: 'expected <count>/<period>, such as 60/1m, 20/1h or 5/1d (units s, m, h, d)',
        });
        return z.NEVER;
      }
      return parsed;
    })
    .default(fallback);
}

/** SOTTO_RATE_LIMITS: "on" (the default), or "off" to turn every rate limit off, for load tests only. */
export function rateLimitsSwitch() {
  return z.enum(['on', 'off'], { message: 'expected on or off' }).default('on');
}
