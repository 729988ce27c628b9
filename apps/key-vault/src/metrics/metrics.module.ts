import { Global, Module } from '@nestjs/common';
import { register } from 'prom-client';
import { VAULT_METRICS_REGISTRY, VaultMetrics } from './vault-metrics';

@Global()
@Module({
  providers: [
    // runService does not hand services its registry yet (asked of the platform):
    // until it does, the vault's series wait in prom-client's default registry.
    { provide: VAULT_METRICS_REGISTRY, useValue: register },
    VaultMetrics,
  ],
  exports: [VaultMetrics],
})
export class MetricsModule {}
