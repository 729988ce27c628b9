import { z } from 'zod';
import { DEFAULT_TRY_DELAYS_SECONDS, tryDelays } from './try-spacing';

const schema = z.object({ KEY_VAULT_TRY_DELAYS: tryDelays() });
const parse = (value?: string) =>
  schema.safeParse(value === undefined ? {} : { KEY_VAULT_TRY_DELAYS: value });

describe('KEY_VAULT_TRY_DELAYS', () => {
  it('defaults to 1 h, 4 h, 12 h, then a day for each of tries 4 to 10', () => {
    expect(parse().data?.KEY_VAULT_TRY_DELAYS).toEqual([
      3600, 14_400, 43_200, 86_400, 86_400, 86_400, 86_400,
    ]);
    expect(DEFAULT_TRY_DELAYS_SECONDS).toHaveLength(7);
  });

  it.each([
    ['0,0,0,0,0,0,0', [0, 0, 0, 0, 0, 0, 0]],
    ['1, 2, 2, 2, 2, 2, 2', [1, 2, 2, 2, 2, 2, 2]],
    ['0.5,60,600,3600,7200,86400,604800', [0.5, 60, 600, 3600, 7200, 86_400, 604_800]],
  ])('reads %p', (value, delays) => {
    expect(parse(value).data?.KEY_VAULT_TRY_DELAYS).toEqual(delays);
  });

  it.each([
    '',
    '0,0,0,0,0,0',
    '0,0,0,0,0,0,0,0',
    '1,2,3,4,5,6,-7',
    '1,2,3,4,5,6,x',
    '1h,0,0,0,0,0,0',
    '0,0,0,0,0,0,31536001',
  ])('refuses %p, saying what it expects', (value) => {
    const result = parse(value);
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((issue) => issue.message)).toEqual([
      'expected 7 comma-separated numbers of seconds (0 to 31536000) for tries 4 to 10, such as 3600,14400,43200,86400,86400,86400,86400',
    ]);
  });
});
