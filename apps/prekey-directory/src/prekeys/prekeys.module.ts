import { Module, type DynamicModule } from '@nestjs/common';
import type { RateLimit } from '@sotto/platform/redis';
import { AccountsModule } from '../accounts/accounts.module';
import { FETCH_LIMIT, FetchRateLimit, type FetchLimit } from './fetch-rate-limit';
import { ONE_TIME_KEY_BUDGET, OneTimeKeyBudget } from './one-time-key-budget';
import { PreKeysRepository } from './prekeys.repository';
import { PreKeysService } from './prekeys.service';

@Module({})
export class PreKeysModule {
  static register(options: { fetchLimit: FetchLimit; oneTimeKeyBudget: RateLimit }): DynamicModule {
    return {
      module: PreKeysModule,
      imports: [AccountsModule],
      providers: [
        { provide: FETCH_LIMIT, useValue: options.fetchLimit },
        { provide: ONE_TIME_KEY_BUDGET, useValue: options.oneTimeKeyBudget },
        FetchRateLimit,
        OneTimeKeyBudget,
        PreKeysRepository,
        PreKeysService,
      ],
      exports: [PreKeysService],
    };
  }
}
