import type { AccountId, DeviceId } from '@sotto/platform/ids';
import { CredentialCache, type AuthenticatedDevice } from './credential-cache';

const device = (account: string, deviceId: number): AuthenticatedDevice => ({
  accountId: account as AccountId,
  deviceId: deviceId as DeviceId,
});

describe('CredentialCache', () => {
  let clock: number;
  let cache: CredentialCache;

  beforeEach(() => {
    clock = 1_000;
    cache = new CredentialCache({ ttlMs: 30_000, maxEntries: 3 }, () => clock);
    cache.resume();
  });

  it('remembers a success until its time is up', () => {
    cache.remember('k', device('a', 1), cache.generation);
    expect(cache.get('k')).toEqual(device('a', 1));
    clock += 29_999;
    expect(cache.get('k')).toEqual(device('a', 1));
    clock += 1;
    expect(cache.get('k')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('keeps at most maxEntries, dropping the oldest first', () => {
    for (const key of ['k1', 'k2', 'k3', 'k4']) cache.remember(key, device(key, 1), cache.generation);
    expect(cache.size).toBe(3);
    expect(cache.get('k1')).toBeUndefined();
    expect(['k2', 'k3', 'k4'].map((key) => cache.get(key)?.accountId)).toEqual(['k2', 'k3', 'k4']);
  });

  it("drops a revoked device's credentials and nothing else", () => {
    cache.remember('old', device('a', 1), cache.generation);
    cache.remember('other-device', device('a', 2), cache.generation);
    cache.remember('other-account', device('b', 1), cache.generation);
    cache.revoke('a', [1]);
    expect(cache.get('old')).toBeUndefined();
    expect(cache.get('other-device')).toEqual(device('a', 2));
    expect(cache.get('other-account')).toEqual(device('b', 1));
    cache.revoke('a', [2, 3]);
    cache.revoke('nobody', [1]);
    expect(cache.get('other-device')).toBeUndefined();
    expect(cache.size).toBe(1);
  });

  it('does not keep a check that began before a revocation', () => {
    const started = cache.generation;
    // The directory was asked; meanwhile another gateway revoked something.
    cache.revoke('a', [1]);
    cache.remember('raced', device('a', 1), started);
    expect(cache.get('raced')).toBeUndefined();
    cache.remember('fresh', device('a', 1), cache.generation);
    expect(cache.get('fresh')).toEqual(device('a', 1));
  });

  it('forgets everything and keeps nothing while revocations cannot be heard, until they can again', () => {
    cache.remember('k', device('a', 1), cache.generation);
    cache.suspend();
    expect(cache.get('k')).toBeUndefined();
    cache.remember('while-deaf', device('a', 1), cache.generation);
    expect(cache.get('while-deaf')).toBeUndefined();

    const started = cache.generation;
    cache.resume();
    // A check that began while deaf may have raced a revocation that was lost.
    cache.remember('began-deaf', device('a', 1), started);
    expect(cache.get('began-deaf')).toBeUndefined();
    cache.remember('k', device('a', 1), cache.generation);
    expect(cache.get('k')).toEqual(device('a', 1));
  });

  it('remembers nothing before it first hears revocations', () => {
    const deaf = new CredentialCache({ ttlMs: 30_000, maxEntries: 3 }, () => clock);
    deaf.remember('k', device('a', 1), deaf.generation);
    expect(deaf.get('k')).toBeUndefined();
  });

  it('re-remembering a key refreshes it without growing the cache', () => {
    cache.remember('k', device('a', 1), cache.generation);
    clock += 20_000;
    cache.remember('k', device('a', 1), cache.generation);
    clock += 20_000;
    expect(cache.get('k')).toEqual(device('a', 1));
    expect(cache.size).toBe(1);
  });
});
