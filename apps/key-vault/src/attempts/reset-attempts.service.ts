import { Inject, Injectable } from '@nestjs/common';
import type { VaultStatus } from '@sotto/contracts/generated/sotto/common/v1/backup';
import { throttled } from '@sotto/platform/grpc';
import type { AccountId } from '@sotto/platform/ids';
import { RateLimiter } from '@sotto/platform/redis';
import { VaultMetrics } from '../metrics/vault-metrics';
import { noVault } from '../records/vault-errors';
import { VaultRecordsRepository } from '../records/vault-records.repository';
import { vaultStatusOf } from '../records/vault-status.service';

export const RESETS_PER_DAY = Symbol('RESETS_PER_DAY');

const DAY_MS = 24 * 3600 * 1000;

/**
 * A signed-in device clears its account's count of failed tries. Limited per
 * account per day (a token bucket: `resetsPerDay` at once, then one every
 * day / resetsPerDay): whoever holds a device credential could otherwise reset
 * after every few guesses and try passwords without end, which the guess limit
 * is there to prevent. A reset with nothing to clear costs nothing.
 */
@Injectable()
export class ResetAttemptsService {
  constructor(
    private readonly records: VaultRecordsRepository,
    private readonly limiter: RateLimiter,
    private readonly metrics: VaultMetrics,
    @Inject(RESETS_PER_DAY) private readonly resetsPerDay: number,
  ) {}

  async reset(accountId: AccountId): Promise<VaultStatus> {
    if (await this.records.destroyIfSpent(accountId)) this.metrics.vaultsDestroyed(1);
    const vault = await this.records.state(accountId);
    switch (vault.kind) {
      case 'none':
        throw noVault();
      case 'destroyed':
        // The owner has been told; only the recovery key opens the backup, and a new password makes a new vault.
        await this.records.clearTombstone(accountId);
        return vaultStatusOf({ kind: 'none' });
      case 'live':
        if (vault.attemptsUsed === 0) return vaultStatusOf(vault);
    }
    const allowed = await this.limiter.take('vault_resets_per_account', accountId, {
      burst: this.resetsPerDay,
      periodMs: DAY_MS,
    });
    if (!allowed.allowed) {
      throw throttled(
        `the count of tries was reset ${this.resetsPerDay} time(s) today already`,
        allowed.retryAfterMs,
      );
    }
    if (!(await this.records.resetAttempts(accountId))) throw noVault();
    this.metrics.attemptsReset();
    return vaultStatusOf(await this.records.state(accountId));
  }
}
