import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { VaultMetrics } from '../metrics/vault-metrics';
import { VaultRecordsRepository } from '../records/vault-records.repository';
import { LOGIN_TTL_SECONDS } from './login.service';

/**
 * Destroys vaults whose 10 tries are spent once the last of them has expired
 * unfinished, without waiting for someone to try again. Every replica sweeps;
 * the DELETE is idempotent, so they never get in each other's way.
 */
@Injectable()
export class SpentVaultSweeper implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('SpentVaultSweeper');
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly records: VaultRecordsRepository,
    private readonly metrics: VaultMetrics,
    @Inject(LOGIN_TTL_SECONDS) private readonly ttlSeconds: number,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.sweep(), this.ttlSeconds * 1000);
    this.timer.unref();
  }

  beforeApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  private async sweep(): Promise<void> {
    try {
      const destroyed = await this.records.destroyAllSpent();
      if (destroyed > 0) {
        this.metrics.vaultsDestroyed(destroyed);
        this.logger.log(`destroyed ${destroyed} vault(s) whose last tries expired`);
      }
    } catch (error) {
      // The next sweep, or the next attempt on the account, tries again.
      this.logger.warn(`sweep failed: ${(error as Error).message}`);
    }
  }
}
