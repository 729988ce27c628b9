import { Injectable } from '@nestjs/common';
import type { AccountId } from '@sotto/platform/ids';
import { VaultMetrics } from '../metrics/vault-metrics';
import { MAX_ATTEMPTS, VaultRecordsRepository } from './vault-records.repository';

/** What an account's own devices may ask of its vault: how it stands, and to remove it. */
@Injectable()
export class VaultStatusService {
  constructor(
    private readonly records: VaultRecordsRepository,
    private readonly metrics: VaultMetrics,
  ) {}

  async status(
    accountId: AccountId,
  ): Promise<{ hasVault: boolean; attemptsLeft: number; destroyed: boolean }> {
    // A vault whose tries ran out unfinished is reported as what it is: destroyed.
    if (await this.records.destroyIfSpent(accountId)) this.metrics.vaultsDestroyed(1);
    const vault = await this.records.state(accountId);
    return {
      hasVault: vault.kind === 'live',
      attemptsLeft: vault.kind === 'live' ? MAX_ATTEMPTS - vault.attemptsUsed : 0,
      destroyed: vault.kind === 'destroyed',
    };
  }

  async delete(accountId: AccountId): Promise<{ deleted: boolean }> {
    return { deleted: await this.records.delete(accountId) };
  }
}
