import {
  BufferBudget,
  BufferBudgetExhaustedError,
  BufferWaitCancelledError,
  type BudgetObserver,
} from './buffer-budget';

/** Records what a budget reports, as the metrics would. */
function observed(): BudgetObserver & { gauge: number[]; queue: number[]; waits: string[] } {
  const gauge: number[] = [];
  const queue: number[] = [];
  const waits: string[] = [];
  return {
    gauge,
    queue,
    waits,
    reserved: (bytes) => gauge.push(bytes),
    queued: (waiting) => queue.push(waiting),
    waited: (outcome) => waits.push(outcome),
  };
}

/** Whether `promise` settled by the time queued callbacks ran. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe('BufferBudget', () => {
  it('reserves at once while there is room, and counts what is held', async () => {
    const observer = observed();
    const budget = new BufferBudget('test buffer', 100, 1_000, observer);
    const a = await budget.reserve(60);
    const b = await budget.reserve(40);
    expect(budget.used).toBe(100);
    a.release();
    expect(budget.used).toBe(40);
    b.release();
    expect(budget.used).toBe(0);
    expect(budget.peak).toBe(100);
    expect(observer.gauge).toEqual([60, 100, 40, 0]);
    expect(observer.waits).toEqual([]);
  });

  it('releases only once however often release is called', async () => {
    const budget = new BufferBudget('test buffer', 100, 1_000);
    const a = await budget.reserve(30);
    const b = await budget.reserve(30);
    a.release();
    a.release();
    expect(budget.used).toBe(30);
    b.release();
    expect(budget.used).toBe(0);
  });

  it('makes a caller wait until room is released, then grants it', async () => {
    const observer = observed();
    const budget = new BufferBudget('test buffer', 100, 60_000, observer);
    const held = await budget.reserve(80);
    const waiting = budget.reserve(50);
    expect(await settled(waiting)).toBe(false);
    expect(budget.waiting).toBe(1);
    held.release();
    const granted = await waiting;
    expect(granted.bytes).toBe(50);
    expect(budget.used).toBe(50);
    expect(budget.waiting).toBe(0);
    expect(budget.peak).toBe(80);
    expect(observer.waits).toEqual(['granted']);
    expect(observer.queue).toEqual([1, 0]);
  });

  it('serves waiters first come, first served: a small request does not overtake a large one', async () => {
    const budget = new BufferBudget('test buffer', 100, 60_000);
    const held = await budget.reserve(90);
    const large = budget.reserve(100);
    // There would be room for 10 bytes, but the large request waits first.
    const small = budget.reserve(10);
    expect(await settled(small)).toBe(false);
    held.release();
    const first = await large;
    expect(await settled(small)).toBe(false);
    first.release();
    (await small).release();
    expect(budget.used).toBe(0);
  });

  it('refuses after the wait with an error naming the buffer, holding nothing for the caller', async () => {
    const observer = observed();
    const budget = new BufferBudget('test buffer', 100, 50, observer);
    const held = await budget.reserve(100);
    const started = Date.now();
    const refused = budget.reserve(10);
    await expect(refused).rejects.toThrow(BufferBudgetExhaustedError);
    await expect(refused).rejects.toThrow('the test buffer (100 bytes) stayed full for 50 ms');
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    expect(budget.waiting).toBe(0);
    expect(budget.used).toBe(100);
    held.release();
    expect(budget.used).toBe(0);
    expect(observer.waits).toEqual(['refused']);
    expect(observer.queue).toEqual([1, 0]);
  });

  it('lets those behind a cancelled waiter in when they fit', async () => {
    const budget = new BufferBudget('test buffer', 100, 60_000);
    const held = await budget.reserve(50);
    const controller = new AbortController();
    const large = budget.reserve(100, controller.signal);
    const small = budget.reserve(50);
    expect(await settled(small)).toBe(false);
    controller.abort();
    await expect(large).rejects.toThrow(BufferWaitCancelledError);
    (await small).release();
    held.release();
    expect(budget.used).toBe(0);
  });

  it('ends a wait when its signal aborts, and refuses an already aborted one', async () => {
    const observer = observed();
    const budget = new BufferBudget('test buffer', 100, 60_000, observer);
    const held = await budget.reserve(100);
    const controller = new AbortController();
    const waiting = budget.reserve(10, controller.signal);
    expect(await settled(waiting)).toBe(false);
    controller.abort();
    await expect(waiting).rejects.toThrow(BufferWaitCancelledError);
    expect(budget.waiting).toBe(0);
    await expect(budget.reserve(10, controller.signal)).rejects.toThrow(BufferWaitCancelledError);
    held.release();
    expect(budget.used).toBe(0);
    expect(observer.waits).toEqual(['cancelled']);
  });

  it('refuses a reservation it could never grant, and a budget of nothing', async () => {
    const budget = new BufferBudget('test buffer', 100, 1_000);
    await expect(budget.reserve(101)).rejects.toThrow(RangeError);
    await expect(budget.reserve(0)).rejects.toThrow(RangeError);
    await expect(budget.reserve(-1)).rejects.toThrow(RangeError);
    await expect(budget.reserve(1.5)).rejects.toThrow(RangeError);
    expect(budget.used).toBe(0);
    expect(() => new BufferBudget('test buffer', 0, 1_000)).toThrow(RangeError);
    expect(() => new BufferBudget('test buffer', 100, -1)).toThrow(RangeError);
  });

  it('never holds more than its capacity under many concurrent holders', async () => {
    const budget = new BufferBudget('test buffer', 1_000, 60_000);
    const holders = Array.from({ length: 200 }, async (_, index) => {
      const reservation = await budget.reserve(1 + ((index * 37) % 400));
      expect(budget.used).toBeLessThanOrEqual(1_000);
      await new Promise((resolve) => setImmediate(resolve));
      reservation.release();
    });
    await Promise.all(holders);
    expect(budget.used).toBe(0);
    expect(budget.peak).toBeLessThanOrEqual(1_000);
    expect(budget.peak).toBeGreaterThan(600);
  });
});
