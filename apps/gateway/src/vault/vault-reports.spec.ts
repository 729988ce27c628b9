import type { VaultStatus } from '@sotto/contracts/generated/sotto/common/v1/backup';
import { reportOf } from './vault-reports';

const vaultStatus = (fields: Partial<VaultStatus>): VaultStatus => ({
  hasVault: true,
  attemptsLeft: 10,
  destroyed: false,
  failedAttempts: 0,
  nextTryAfterMs: '0',
  ...fields,
});

describe('reportOf', () => {
  it('says nothing of a vault without failed tries, or of none', () => {
    expect(reportOf(undefined)).toBeUndefined();
    expect(reportOf(vaultStatus({}))).toBeUndefined();
    // Spent by a login still in flight, not known to have failed.
    expect(reportOf(vaultStatus({ attemptsLeft: 9 }))).toBeUndefined();
    expect(reportOf(vaultStatus({ hasVault: false, attemptsLeft: 0 }))).toBeUndefined();
  });

  it('reports failed tries with the tries left and the wait', () => {
    expect(reportOf(vaultStatus({ attemptsLeft: 7, failedAttempts: 3, nextTryAfterMs: '3599000' }))).toEqual({
      attemptsLeft: 7,
      failedAttempts: 3,
      nextTryAfterMs: '3599000',
      destroyed: false,
    });
  });

  it('reports a destroyed vault', () => {
    expect(
      reportOf(vaultStatus({ hasVault: false, attemptsLeft: 0, destroyed: true, failedAttempts: 10 })),
    ).toEqual({ attemptsLeft: 0, failedAttempts: 10, nextTryAfterMs: '0', destroyed: true });
  });
});
