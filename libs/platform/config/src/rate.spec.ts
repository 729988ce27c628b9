import { z } from 'zod';
import { EnvironmentError, formatRate, parseEnvironment, parseRate, rate, rateLimitsSwitch } from './index';

describe('rates', () => {
  it('reads a count per period, the period in s, m, h or d, its number optional', () => {
    expect(parseRate('60/1m')).toEqual({ burst: 60, periodMs: 60_000 });
    expect(parseRate('20/h')).toEqual({ burst: 20, periodMs: 3_600_000 });
    expect(parseRate('5/2d')).toEqual({ burst: 5, periodMs: 2 * 86_400_000 });
    expect(parseRate(' 3/30s ')).toEqual({ burst: 3, periodMs: 30_000 });
  });

  it('refuses anything else', () => {
    for (const bad of [
      '',
      '60',
      '0/1m',
      '60/0m',
      '-1/1m',
      '1.5/1m',
      '60/1w',
      '60/1 m',
      '60per1m',
      '1e3/1m',
    ]) {
      expect(parseRate(bad)).toBeUndefined();
    }
  });

  it('writes a rate back in the largest whole unit', () => {
    expect(formatRate({ burst: 60, periodMs: 60_000 })).toBe('60/1m');
    expect(formatRate({ burst: 1, periodMs: 86_400_000 })).toBe('1/1d');
    expect(formatRate({ burst: 20, periodMs: 90_000 })).toBe('20/90s');
    expect(parseRate(formatRate({ burst: 7, periodMs: 7_200_000 }))).toEqual({
      burst: 7,
      periodMs: 7_200_000,
    });
  });

  it('validates rate variables and the switch, naming the variable', () => {
    const schema = z.object({ LIMIT: rate('60/1m'), SOTTO_RATE_LIMITS: rateLimitsSwitch() });
    expect(parseEnvironment(schema, {})).toEqual({
      LIMIT: { burst: 60, periodMs: 60_000 },
      SOTTO_RATE_LIMITS: 'on',
    });
    expect(parseEnvironment(schema, { LIMIT: '3/1s', SOTTO_RATE_LIMITS: 'off' })).toEqual({
      LIMIT: { burst: 3, periodMs: 1_000 },
      SOTTO_RATE_LIMITS: 'off',
    });
    let thrown: unknown;
    try {
      parseEnvironment(schema, { LIMIT: '60 a minute', SOTTO_RATE_LIMITS: 'no' });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(EnvironmentError);
    expect((thrown as EnvironmentError).problems).toEqual([
      {
        variable: 'LIMIT',
        message: 'expected <count>/<period>, such as 60/1m, 20/1h or 5/1d (units s, m, h, d)',
      },
      { variable: 'SOTTO_RATE_LIMITS', message: 'expected on or off' },
    ]);
  });
});
