import { Module, type DynamicModule } from '@nestjs/common';
import { DoomedBlobs } from './doomed-blobs';
import { SWEEP_INTERVAL_MS, Sweeper } from './sweeper';

@Module({})
export class CleanupModule {
  static register(options: { sweepIntervalMs: number }): DynamicModule {
    return {
      module: CleanupModule,
      // Uploads doom blobs too (cancelled, discarded on a digest mismatch).
      global: true,
      providers: [{ provide: SWEEP_INTERVAL_MS, useValue: options.sweepIntervalMs }, DoomedBlobs, Sweeper],
      exports: [DoomedBlobs],
    };
  }
}
