import { PRESENCE_MAX_PER_CALL, presenceBatches } from './presence-calls';

describe('presenceBatches', () => {
  const numbers = (count: number): number[] => Array.from({ length: count }, (_, index) => index);

  it('makes no call for nothing, and one for up to the limit', () => {
    expect(presenceBatches([])).toEqual([]);
    expect(presenceBatches(numbers(1))).toEqual([[0]]);
    expect(presenceBatches(numbers(PRESENCE_MAX_PER_CALL))).toEqual([numbers(PRESENCE_MAX_PER_CALL)]);
  });

  it('splits a longer list in order, every item in exactly one batch, none over the limit', () => {
    const items = numbers(2 * PRESENCE_MAX_PER_CALL + 1);
    const batches = presenceBatches(items);
    expect(batches.map((batch) => batch.length)).toEqual([PRESENCE_MAX_PER_CALL, PRESENCE_MAX_PER_CALL, 1]);
    expect(batches.flat()).toEqual(items);
  });
});
