import { SameTurnBatch } from './same-turn';

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('SameTurnBatch', () => {
  it('flushes what callers handed in during one turn together, each caller in order, and tells each the outcome', async () => {
    const flushes: number[][] = [];
    const batch = new SameTurnBatch((items: number[]) => {
      flushes.push(items);
      return Promise.resolve(items.length);
    });
    const first = batch.add([1, 2]);
    // Callers that come a few promise jobs later, as the workers of one fetch do, still share the flush.
    const second = Promise.resolve().then(() => batch.add([3]));
    const third = batch.add([4, 5]);
    expect(flushes).toEqual([]);
    expect(await Promise.all([first, second, third])).toEqual([5, 5, 5]);
    expect(flushes).toEqual([[1, 2, 4, 5, 3]]);

    await nextTurn();
    expect(await batch.add([6])).toBe(1);
    expect(flushes).toEqual([[1, 2, 4, 5, 3], [6]]);
  });

  it('fails every caller of a failed flush with its error, and the next turn flushes afresh', async () => {
    let fail = true;
    const batch = new SameTurnBatch((items: string[]) =>
      fail
        ? Promise.reject(new Error(`could not flush ${items.join(',')}`))
        : Promise.resolve(items.join(',')),
    );
    const outcomes = await Promise.allSettled([batch.add(['a']), batch.add(['b'])]);
    expect(outcomes).toEqual([
      { status: 'rejected', reason: new Error('could not flush a,b') },
      { status: 'rejected', reason: new Error('could not flush a,b') },
    ]);
    fail = false;
    expect(await batch.add(['c'])).toBe('c');
  });

  it('turns a flush that throws before its first await into a rejection, not an exception in setImmediate', async () => {
    const batch = new SameTurnBatch((): Promise<number> => {
      throw new Error('refused at once');
    });
    await expect(batch.add([1])).rejects.toThrow('refused at once');
  });
});
