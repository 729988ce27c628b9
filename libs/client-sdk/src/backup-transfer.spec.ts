import { busyWaitMs } from './backup-transfer';

describe('the wait before coming back to a busy backup store', () => {
  const range = (retryAfterMs: number | undefined, inRow: number): [number, number] => {
    const waits = Array.from({ length: 200 }, () => busyWaitMs(retryAfterMs, inRow));
    return [Math.min(...waits), Math.max(...waits)];
  };

  it("is never shorter than the store's retry-after, and up to half again at random", () => {
    const [shortest, longest] = range(5000, 1);
    expect(shortest).toBeGreaterThanOrEqual(5000);
    expect(longest).toBeLessThanOrEqual(7500);
    // Spread out, so that uploads refused together do not come back together.
    expect(longest).toBeGreaterThan(shortest);
  });

  it('doubles from 1 s while the store stays busy, up to 30 s', () => {
    expect(range(undefined, 1)[0]).toBeGreaterThanOrEqual(1000);
    expect(range(undefined, 1)[1]).toBeLessThanOrEqual(1500);
    expect(range(1000, 3)[0]).toBeGreaterThanOrEqual(4000);
    expect(range(1000, 3)[1]).toBeLessThanOrEqual(6000);
    expect(range(1000, 40)[0]).toBeGreaterThanOrEqual(30_000);
    expect(range(1000, 40)[1]).toBeLessThanOrEqual(45_000);
  });
});
