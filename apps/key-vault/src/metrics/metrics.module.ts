import { Global, Module } from '@nestjs/common';
import { VaultMetrics } from './vault-metrics';

@Global()
@Module({ providers: [VaultMetrics], exports: [VaultMetrics] })
export class MetricsModule {}
