import { Module, type DynamicModule } from '@nestjs/common';
import { RateLimiter } from '@sotto/platform/redis';
import { AccountsModule } from '../accounts/accounts.module';
import { FETCH_LIMIT, FetchRateLimit, type FetchLimit } from './fetch-rate-limit';
import { PreKeysRepository } from './prekeys.repository';
import { PreKeysService } from './prekeys.service';

@Module({})
export class PreKeysModule {
  static register(limit: FetchLimit): DynamicModule {
    return {
      module: PreKeysModule,
      imports: [AccountsModule],
      providers: [
        { provide: FETCH_LIMIT, useValue: limit },
        RateLimiter,
        FetchRateLimit,
        PreKeysRepository,
        PreKeysService,
      ],
      exports: [PreKeysService],
    };
  }
}
