import { Module, type DynamicModule } from '@nestjs/common';
import { RecordsModule } from '../records/records.module';
import { RESETS_PER_DAY, ResetAttemptsService } from './reset-attempts.service';

@Module({})
export class AttemptsModule {
  static register(options: { resetsPerDay: number }): DynamicModule {
    return {
      module: AttemptsModule,
      imports: [RecordsModule],
      providers: [{ provide: RESETS_PER_DAY, useValue: options.resetsPerDay }, ResetAttemptsService],
      exports: [ResetAttemptsService],
    };
  }
}
