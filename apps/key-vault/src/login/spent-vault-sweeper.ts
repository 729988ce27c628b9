import { Inject, Injectable } from '@nestjs/common';
import { PeriodicTask } from '@sotto/platform/periodic';
import { VaultMetrics } from '../metrics/vault-metrics';
import { VaultRecordsRepository } from '../records/vault-records.repository';
import { LOGIN_TTL_SECONDS } from './login.service';

/**
 * Destroys vaults whose 10 tries are spent once the last of them has expired
 * unfinished, without waiting for someone to try again. Every replica sweeps,
 * once a login's lifetime; the DELETE is idempotent, so they never get in each
 * other's way. A sweep that fails is tried again next time, and the next
 * attempt on the account destroys its vault anyway.
 */
@Injectable()
export class SpentVaultSweeper extends PeriodicTask {
  constructor(
    private readonly records: VaultRecordsRepository,
    private readonly metrics: VaultMetrics,
    @Inject(LOGIN_TTL_SECONDS) ttlSeconds: number,
  ) {
    super(SpentVaultSweeper.name, ttlSeconds * 1000);
  }

  protected async run(): Promise<void> {
    const destroyed = await this.records.destroyAllSpent();
    if (destroyed > 0) {
      this.metrics.vaultsDestroyed(destroyed);
      this.logger.log(`destroyed ${destroyed} vault(s) whose last tries expired`);
    }
  }
}
