import { CallBatcher, type Outcome } from './call-batcher';

/** A batch call that waits until the test answers it, and records what it carried. */
function controlledBatches() {
  const batches: number[][] = [];
  const pending: { answer: (outcomes: Outcome<string>[]) => void; fail: (error: Error) => void }[] = [];
  const send = (requests: number[]): Promise<Outcome<string>[]> => {
    batches.push(requests);
    return new Promise((answer, fail) => pending.push({ answer, fail }));
  };
  const answerAll = (index: number) =>
    pending[index]?.answer(batches[index].map((request) => ({ ok: `answer ${request}` })));
  const settled = () => new Promise((resolve) => setImmediate(resolve));
  return { batches, pending, send, answerAll, settled };
}

describe('CallBatcher', () => {
  it('sends calls at once while batches are free, and gathers the rest into the next', async () => {
    const { batches, send, answerAll, settled } = controlledBatches();
    const batcher = new CallBatcher(send, {
      concurrency: 2,
      maxCalls: 100,
      maxBytes: 1_000,
      sizeOf: () => 1,
    });
    const first = batcher.call(1);
    const second = batcher.call(2);
    expect(batches).toEqual([[1], [2]]);
    const waiting = [3, 4, 5].map((request) => batcher.call(request));
    expect(batcher.backlog).toBe(3);
    answerAll(0);
    expect(await first).toBe('answer 1');
    await settled();
    expect(batches).toEqual([[1], [2], [3, 4, 5]]);
    answerAll(2);
    answerAll(1);
    expect(await Promise.all([second, ...waiting])).toEqual(['answer 2', 'answer 3', 'answer 4', 'answer 5']);
  });

  it('keeps each batch within its count and bytes, a larger call going alone', async () => {
    const { batches, send, answerAll, settled } = controlledBatches();
    const batcher = new CallBatcher(send, {
      concurrency: 1,
      maxCalls: 3,
      maxBytes: 100,
      sizeOf: (request) => request,
    });
    const calls = [1, 2, 3, 4, 5, 500, 60, 50].map((request) => batcher.call(request));
    for (let index = 0; index < 6; index++) {
      answerAll(index);
      await settled();
    }
    await Promise.all(calls);
    expect(batches).toEqual([[1], [2, 3, 4], [5], [500], [60], [50]]);
  });

  it('counts a call for what countOf says, one that counts for more than a batch going alone', async () => {
    const { batches, send, answerAll, settled } = controlledBatches();
    const batcher = new CallBatcher(send, {
      concurrency: 1,
      maxCalls: 4,
      maxBytes: 1_000,
      sizeOf: () => 1,
      countOf: (request) => request,
    });
    const calls = [1, 2, 2, 9, 1, 3].map((request) => batcher.call(request));
    for (let index = 0; index < 5; index++) {
      answerAll(index);
      await settled();
    }
    await Promise.all(calls);
    expect(batches).toEqual([[1], [2, 2], [9], [1, 3]]);
  });

  it("settles each call with its own outcome: one call's error fails no other", async () => {
    const { pending, send } = controlledBatches();
    const batcher = new CallBatcher(send, { concurrency: 1, maxCalls: 10, maxBytes: 10, sizeOf: () => 1 });
    const blocker = batcher.call(0);
    const good = batcher.call(1);
    const bad = batcher.call(2);
    pending[0]?.answer([{ ok: 'first' }]);
    await blocker;
    await new Promise((resolve) => setImmediate(resolve));
    pending[1]?.answer([{ ok: 'fine' }, { error: new Error('device list mismatch') }]);
    await expect(good).resolves.toBe('fine');
    await expect(bad).rejects.toThrow('device list mismatch');
  });

  it('fails every call of a batch whose call failed as a whole, and goes on with the next', async () => {
    const { pending, send, answerAll, settled } = controlledBatches();
    const batcher = new CallBatcher(send, { concurrency: 1, maxCalls: 10, maxBytes: 10, sizeOf: () => 1 });
    const lost = [batcher.call(1)];
    pending[0]?.fail(new Error('message-relay is unavailable; try again'));
    await expect(lost[0]).rejects.toThrow('unavailable');
    await settled();
    const later = batcher.call(2);
    answerAll(1);
    await expect(later).resolves.toBe('answer 2');
  });

  it('fails the calls a short answer left out, never leaving one waiting', async () => {
    const { pending, send } = controlledBatches();
    const batcher = new CallBatcher(send, { concurrency: 1, maxCalls: 10, maxBytes: 10, sizeOf: () => 1 });
    const blocker = batcher.call(0);
    const [one, two] = [batcher.call(1), batcher.call(2)];
    pending[0]?.answer([{ ok: 'first' }]);
    await blocker;
    await new Promise((resolve) => setImmediate(resolve));
    pending[1]?.answer([{ ok: 'only one' }]);
    await expect(one).resolves.toBe('only one');
    await expect(two).rejects.toThrow('batch answered 1 of 2 calls');
  });
});
