import { Global, Module, type DynamicModule } from '@nestjs/common';
import { TRY_DELAYS } from './try-spacing';

/** The waits between tries (KEY_VAULT_TRY_DELAYS), for whichever module counts or reports tries. */
@Global()
@Module({})
export class TrySpacingModule {
  static register(delaysSeconds: readonly number[]): DynamicModule {
    return {
      module: TrySpacingModule,
      providers: [{ provide: TRY_DELAYS, useValue: delaysSeconds }],
      exports: [TRY_DELAYS],
    };
  }
}
