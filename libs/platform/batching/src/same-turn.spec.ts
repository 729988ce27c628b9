import { SameTurnBatch } from './same-turn';

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('SameTurnBatch', () => {
  it('flushes what callers handed in during one turn together, and gives each caller the answers to its own items', async () => {
    const flushes: number[][] = [];
    const batch = new SameTurnBatch((items: number[]) => {
      flushes.push(items);
      return Promise.resolve(items.map((item) => item * 10));
    });
    const first = batch.add([1, 2]);
    // Callers that come a few promise jobs later, as the workers of one fetch do, still share the flush.
    const second = Promise.resolve().then(() => batch.add([3]));
    const third = batch.add([4, 5]);
    expect(flushes).toEqual([]);
    expect(await Promise.all([first, second, third])).toEqual([[10, 20], [30], [40, 50]]);
    expect(flushes).toEqual([[1, 2, 4, 5, 3]]);

    await nextTurn();
    expect(await batch.add([6])).toEqual([60]);
    expect(await batch.add([])).toEqual([]);
    expect(flushes).toEqual([[1, 2, 4, 5, 3], [6]]);
  });

  it('fails every caller of a failed flush with its error, and the next turn flushes afresh', async () => {
    let fail = true;
    const batch = new SameTurnBatch((items: string[]) =>
      fail ? Promise.reject(new Error(`could not flush ${items.join(',')}`)) : Promise.resolve(items),
    );
    const outcomes = await Promise.allSettled([batch.add(['a']), batch.add(['b'])]);
    expect(outcomes).toEqual([
      { status: 'rejected', reason: new Error('could not flush a,b') },
      { status: 'rejected', reason: new Error('could not flush a,b') },
    ]);
    fail = false;
    expect(await batch.add(['c'])).toEqual(['c']);
  });

  it('turns a flush that throws before its first await, or answers too few items, into a rejection', async () => {
    const throwing = new SameTurnBatch((): Promise<number[]> => {
      throw new Error('refused at once');
    });
    await expect(throwing.add([1])).rejects.toThrow('refused at once');
    const short = new SameTurnBatch((items: number[]) => Promise.resolve(items.slice(1)));
    const [first, second] = await Promise.allSettled([short.add([1]), short.add([2])]);
    expect(first).toEqual({ status: 'fulfilled', value: [2] });
    expect(second).toEqual({
      status: 'rejected',
      reason: new Error('a batch of 1 answers for more items than that'),
    });
  });
});
