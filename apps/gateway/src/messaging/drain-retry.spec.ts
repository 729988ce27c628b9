import { drainRetryDelayMs } from './drain-retry';

describe('drainRetryDelayMs', () => {
  const delays = { minMs: 250, maxMs: 30_000 };

  it('doubles from the first wait, between half and all of it', () => {
    expect([1, 2, 3, 4].map((attempt) => drainRetryDelayMs(attempt, delays, () => 0))).toEqual([
      125, 250, 500, 1000,
    ]);
    expect([1, 2, 3, 4].map((attempt) => drainRetryDelayMs(attempt, delays, () => 0.999_999))).toEqual([
      250, 500, 1000, 2000,
    ]);
  });

  it('never waits longer than the cap, however many failures', () => {
    for (const attempt of [8, 9, 50, 10_000]) {
      expect(drainRetryDelayMs(attempt, delays, () => 0.999_999)).toBe(30_000);
      expect(drainRetryDelayMs(attempt, delays, () => 0)).toBe(15_000);
    }
  });

  it('spreads retries of the same attempt over the upper half of the wait', () => {
    const waits = Array.from({ length: 1000 }, () => drainRetryDelayMs(5, delays));
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(2000);
    expect(Math.max(...waits)).toBeLessThanOrEqual(4000);
    expect(new Set(waits).size).toBeGreaterThan(100);
  });
});
