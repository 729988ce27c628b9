import { uuidv7 } from './uuidv7';

describe('uuidv7', () => {
  it('has the version and variant bits of RFC 9562 and starts with the time', () => {
    const guid = uuidv7(0x0189_0a5d_ac96);
    expect(guid).toMatch(/^01890a5d-ac96-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('sorts by creation time and never repeats', () => {
    const guids = Array.from({ length: 1000 }, (_, index) => uuidv7(1_700_000_000_000 + index));
    expect([...guids].sort()).toEqual(guids);
    expect(new Set(guids).size).toBe(1000);
  });

  it('gives GUIDs of one millisecond random bits of their own, across refills of its random pool', () => {
    const guids = Array.from({ length: 2000 }, () => uuidv7(1_700_000_000_000));
    const randomParts = guids.map((guid) => guid.slice(15));
    expect(new Set(randomParts).size).toBe(2000);
    for (const guid of guids)
      expect(guid).toMatch(/^018bcfe5-6800-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
