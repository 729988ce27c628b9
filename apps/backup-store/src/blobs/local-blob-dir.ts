import { constants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import { Module, type DynamicModule } from '@nestjs/common';
import { Readiness } from '@sotto/platform/health';

export const BLOB_DIR = Symbol('BLOB_DIR');

/** The local directory that holds backup blobs; created if missing and checked for writes. */
@Module({})
export class LocalBlobDirModule {
  static register(dir: string): DynamicModule {
    return {
      module: LocalBlobDirModule,
      providers: [
        {
          provide: BLOB_DIR,
          inject: [Readiness],
          useFactory: async (readiness: Readiness): Promise<string> => {
            await mkdir(dir, { recursive: true, mode: 0o700 });
            const writable = (): Promise<void> => access(dir, constants.W_OK | constants.R_OK);
            await writable();
            readiness.register('blob-dir', writable);
            return dir;
          },
        },
      ],
      exports: [BLOB_DIR],
    };
  }
}
