import { GroupCommit } from './group-commit';

/** A flush that waits until the test lets it finish, and records what it carried. */
function controlledFlush() {
  const flushes: number[][] = [];
  const pending: { resolve: () => void; reject: (error: Error) => void }[] = [];
  const flush = (items: number[]): Promise<void> => {
    flushes.push(items);
    return new Promise<void>((resolve, reject) => pending.push({ resolve, reject }));
  };
  const settled = () => new Promise((resolve) => setImmediate(resolve));
  return { flushes, pending, flush, settled };
}

const sizeOf = (item: number): number => item;

describe('GroupCommit', () => {
  it('flushes a lone caller at once, and the callers that came meanwhile together in the next flush', async () => {
    const { flushes, pending, flush, settled } = controlledFlush();
    const commit = new GroupCommit(flush, { maxItems: 100, maxBytes: 1_000, sizeOf });
    const first = commit.add([1]);
    expect(flushes).toEqual([[1]]);
    const later = [commit.add([2, 3]), commit.add([4]), commit.add([5])];
    expect(commit.backlog).toBe(3);
    pending[0]?.resolve();
    await first;
    await settled();
    expect(flushes).toEqual([[1], [2, 3, 4, 5]]);
    pending[1]?.resolve();
    await Promise.all(later);
    expect(commit.backlog).toBe(0);
  });

  it('never splits a caller, and keeps each flush within the item and byte limits (a big caller goes alone)', async () => {
    const { flushes, pending, flush, settled } = controlledFlush();
    const commit = new GroupCommit(flush, { maxItems: 3, maxBytes: 100, sizeOf });
    const all = [commit.add([1]), commit.add([2, 2]), commit.add([3, 3]), commit.add([200]), commit.add([4])];
    for (let i = 0; i < 5 && pending[i]; i++) {
      pending[i]?.resolve();
      await settled();
    }
    await Promise.all(all);
    expect(flushes).toEqual([[1], [2, 2], [3, 3], [200], [4]]);
    for (const each of flushes) expect(each.length <= 3 || each.length === 1).toBe(true);
  });

  it('fails exactly the callers of a failed flush, and goes on with the next', async () => {
    const { flushes, pending, flush, settled } = controlledFlush();
    const commit = new GroupCommit(flush, { maxItems: 100, maxBytes: 1_000, sizeOf });
    const first = commit.add([1]);
    const second = commit.add([2]);
    const third = commit.add([3]);
    pending[0]?.reject(new Error('broker gone'));
    await expect(first).rejects.toThrow('broker gone');
    await settled();
    expect(flushes).toEqual([[1], [2, 3]]);
    pending[1]?.resolve();
    await expect(Promise.all([second, third])).resolves.toEqual([undefined, undefined]);
    const fourth = commit.add([4]);
    expect(flushes).toEqual([[1], [2, 3], [4]]);
    pending[2]?.reject(new Error('again'));
    await expect(fourth).rejects.toThrow('again');
  });

  it('resolves an empty batch without a flush', async () => {
    const { flushes, flush } = controlledFlush();
    await new GroupCommit(flush, { maxItems: 1, maxBytes: 1, sizeOf }).add([]);
    expect(flushes).toEqual([]);
  });
});
