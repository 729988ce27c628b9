import { z } from 'zod';

/** Tries answered at once after a successful login (or a reset); each later one waits. */
export const FREE_TRIES = 3;

/** Waits before tries 4 to 10, in seconds: 1 h, 4 h, 12 h, then a day each. */
export const DEFAULT_TRY_DELAYS_SECONDS: readonly number[] = [
  3600, 14_400, 43_200, 86_400, 86_400, 86_400, 86_400,
];

/** Provider token of the waits in force (KEY_VAULT_TRY_DELAYS), seconds per try after the free ones. */
export const TRY_DELAYS = Symbol('TRY_DELAYS');

const MAX_DELAY_SECONDS = 365 * 86_400;

/**
 * KEY_VAULT_TRY_DELAYS: seconds to wait, after the last counted try, before
 * each of tries 4 to 10. Seven comma-separated numbers; `0,0,0,0,0,0,0`
 * removes the waits (for tests that spend ten tries quickly).
 */
export function tryDelays() {
  const message = `expected ${DEFAULT_TRY_DELAYS_SECONDS.length} comma-separated numbers of seconds (0 to ${MAX_DELAY_SECONDS}) for tries ${FREE_TRIES + 1} to ${FREE_TRIES + DEFAULT_TRY_DELAYS_SECONDS.length}, such as ${DEFAULT_TRY_DELAYS_SECONDS.join(',')}`;
  return z
    .string()
    .transform((value, context) => {
      const parts = value.split(',').map((part) => part.trim());
      const delays = parts.map((part) => (/^\d+(\.\d+)?$/.test(part) ? Number(part) : Number.NaN));
      const valid =
        delays.length === DEFAULT_TRY_DELAYS_SECONDS.length &&
        delays.every((delay) => Number.isFinite(delay) && delay <= MAX_DELAY_SECONDS);
      if (!valid) {
        context.addIssue({ code: 'custom', message });
        return z.NEVER;
      }
      return delays;
    })
    .default([...DEFAULT_TRY_DELAYS_SECONDS]);
}
