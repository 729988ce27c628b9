import { Inject, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { Readiness } from '@sotto/platform/health';
import { VaultMetrics } from '../metrics/vault-metrics';
import { Pkcs11Token, type HsmSettings } from '../sealing/pkcs11-token';
import { Sealer } from '../sealing/sealer';
import { loadServerSetup } from './load-server-setup';
import { OpaqueServer } from './opaque-server';
import { ServerSetupStore } from './server-setup.store';

const VAULT_KEYS = Symbol('VAULT_KEYS');

class TokenLifecycle implements OnApplicationShutdown {
  constructor(@Inject(Pkcs11Token) private readonly token: Pkcs11Token) {}

  onApplicationShutdown(): void {
    this.token.close();
  }
}

/**
 * The HSM session, and what it unlocks at start-up: the OPAQUE server setup
 * and the sealer for everything else at rest. A start-up without a working
 * HSM, or with one that cannot open the stored setup, fails naming the
 * variable to fix.
 */
@Module({})
export class ServerSetupModule {
  static register(settings: HsmSettings & { keyLabel: string }): DynamicModule {
    return {
      module: ServerSetupModule,
      global: true,
      providers: [
        {
          provide: Pkcs11Token,
          inject: [Readiness],
          useFactory: (readiness: Readiness): Pkcs11Token => {
            const token = Pkcs11Token.open(settings);
            readiness.register('hsm', () => Promise.resolve().then(() => token.ping()));
            return token;
          },
        },
        TokenLifecycle,
        ServerSetupStore,
        {
          provide: VAULT_KEYS,
          inject: [Pkcs11Token, ServerSetupStore],
          useFactory: (token: Pkcs11Token, store: ServerSetupStore) =>
            loadServerSetup(token, store, settings.keyLabel),
        },
        {
          provide: OpaqueServer,
          inject: [VAULT_KEYS, VaultMetrics],
          useFactory: (keys: { setup: string }, metrics: VaultMetrics) =>
            new OpaqueServer(keys.setup, metrics),
        },
        {
          provide: Sealer,
          inject: [VAULT_KEYS],
          useFactory: (keys: { sealer: Sealer }) => keys.sealer,
        },
      ],
      exports: [OpaqueServer, Sealer],
    };
  }
}
