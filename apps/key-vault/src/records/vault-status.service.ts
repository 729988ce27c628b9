import { Injectable } from '@nestjs/common';
import type { VaultStatus } from '@sotto/contracts/generated/sotto/common/v1/backup';
import type { AccountId } from '@sotto/platform/ids';
import { VaultMetrics } from '../metrics/vault-metrics';
import { MAX_ATTEMPTS, VaultRecordsRepository, type VaultState } from './vault-records.repository';

/** How a vault stands, as its account's devices are told. */
export function vaultStatusOf(vault: VaultState): VaultStatus {
  switch (vault.kind) {
    case 'live':
      return {
        hasVault: true,
        attemptsLeft: MAX_ATTEMPTS - vault.attemptsUsed,
        destroyed: false,
        failedAttempts: vault.failedAttempts,
        nextTryAfterMs: String(vault.waitMs),
      };
    case 'destroyed':
      return {
        hasVault: false,
        attemptsLeft: 0,
        destroyed: true,
        failedAttempts: MAX_ATTEMPTS,
        nextTryAfterMs: '0',
      };
    case 'none':
      return { hasVault: false, attemptsLeft: 0, destroyed: false, failedAttempts: 0, nextTryAfterMs: '0' };
  }
}

/** What an account's own devices may ask of its vault: how it stands, and to remove it. */
@Injectable()
export class VaultStatusService {
  constructor(
    private readonly records: VaultRecordsRepository,
    private readonly metrics: VaultMetrics,
  ) {}

  async status(accountId: AccountId): Promise<VaultStatus> {
    // A vault whose tries ran out unfinished is reported as what it is: destroyed.
    if (await this.records.destroyIfSpent(accountId)) this.metrics.vaultsDestroyed(1);
    return vaultStatusOf(await this.records.state(accountId));
  }

  async delete(accountId: AccountId): Promise<{ deleted: boolean }> {
    return { deleted: await this.records.delete(accountId) };
  }
}
