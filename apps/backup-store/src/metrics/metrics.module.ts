import { Global, Module } from '@nestjs/common';
import { BackupMetrics } from './backup-metrics';

@Global()
@Module({ providers: [BackupMetrics], exports: [BackupMetrics] })
export class MetricsModule {}
