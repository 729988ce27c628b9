import { comesAfter, followsDirectly } from './sequences';

/** Decimal as a decoded uint64 is written. */
const text = (value: bigint): string => value.toString();

const U64_MAX = 2n ** 64n - 1n;
const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Values around every place the digits carry or the length changes, and the ends of uint64. */
function edgeValues(): bigint[] {
  const values = new Set<bigint>([0n, 1n, 2n, 8n, 9n, 10n, 11n, 19n, 20n, 99n, 100n, 101n, 109n, 110n]);
  for (let power = 1n; power <= U64_MAX; power *= 10n) {
    for (const delta of [-2n, -1n, 0n, 1n, 2n]) values.add(power + delta);
    values.add(power * 5n);
  }
  for (const delta of [-1n, 0n, 1n, 2n]) values.add(SAFE + delta);
  for (const value of [U64_MAX - 1n, U64_MAX, 1_099_999n, 1_100_000n, 1_009_999n, 1_010_000n])
    values.add(value);
  return [...values].filter((value) => value >= 0n && value <= U64_MAX);
}

/** The pairs of edge values on which `compare` and BigInt give different answers. */
function disagreements(
  compare: (a: string, b: string) => boolean,
  byBigInt: (a: bigint, b: bigint) => boolean,
): string[] {
  const values = edgeValues();
  expect(values.length).toBeGreaterThan(100);
  return values.flatMap((a) =>
    values.flatMap((b) => (compare(text(a), text(b)) === byBigInt(a, b) ? [] : [`${a} vs ${b}`])),
  );
}

describe('comesAfter', () => {
  it('orders by value, not as text: a longer sequence is later', () => {
    expect(comesAfter('10', '9')).toBe(true);
    expect(comesAfter('9', '10')).toBe(false);
    expect(comesAfter('100', '99')).toBe(true);
    expect(comesAfter('2', '10')).toBe(false);
  });

  it('is false for the same sequence and for an earlier one', () => {
    expect(comesAfter('0', '0')).toBe(false);
    expect(comesAfter('41', '41')).toBe(false);
    expect(comesAfter('41', '42')).toBe(false);
    expect(comesAfter('42', '41')).toBe(true);
  });

  it('keeps order past the safe integers, up to the largest uint64', () => {
    expect(comesAfter(text(SAFE + 1n), text(SAFE))).toBe(true);
    // As numbers these two are equal; as sequences they are not.
    expect(Number(text(SAFE + 2n))).toBe(Number(text(SAFE + 1n)));
    expect(comesAfter(text(SAFE + 2n), text(SAFE + 1n))).toBe(true);
    expect(comesAfter(text(U64_MAX), text(U64_MAX - 1n))).toBe(true);
    expect(comesAfter(text(U64_MAX - 1n), text(U64_MAX))).toBe(false);
  });

  it('answers as BigInt does for every pair of edge values', () => {
    expect(disagreements(comesAfter, (a, b) => a > b)).toEqual([]);
  });
});

describe('followsDirectly', () => {
  it('takes the next sequence, carrying over 9s', () => {
    expect(followsDirectly('1', '0')).toBe(true);
    expect(followsDirectly('8', '7')).toBe(true);
    expect(followsDirectly('10', '9')).toBe(true);
    expect(followsDirectly('200', '199')).toBe(true);
    expect(followsDirectly('1000', '999')).toBe(true);
    expect(followsDirectly('1010000', '1009999')).toBe(true);
  });

  it('refuses a gap, a repeat, one out of order, and a length that does not match', () => {
    expect(followsDirectly('3', '1')).toBe(false);
    expect(followsDirectly('5', '5')).toBe(false);
    expect(followsDirectly('4', '5')).toBe(false);
    expect(followsDirectly('100', '9')).toBe(false);
    expect(followsDirectly('10', '99')).toBe(false);
    expect(followsDirectly('2000', '999')).toBe(false);
    expect(followsDirectly('1001', '999')).toBe(false);
    expect(followsDirectly('210', '199')).toBe(false);
    expect(followsDirectly('101', '199')).toBe(false);
    expect(followsDirectly('1100000', '1009999')).toBe(false);
  });

  it('works past the safe integers, where numbers could not tell neighbours apart', () => {
    expect(followsDirectly(text(SAFE + 2n), text(SAFE + 1n))).toBe(true);
    expect(followsDirectly(text(SAFE + 3n), text(SAFE + 1n))).toBe(false);
    expect(followsDirectly(text(U64_MAX), text(U64_MAX - 1n))).toBe(true);
    expect(followsDirectly('100000000000000000000', '99999999999999999999')).toBe(true);
  });

  it('answers as BigInt does for every pair of edge values', () => {
    expect(disagreements(followsDirectly, (a, b) => a === b + 1n)).toEqual([]);
  });
});
