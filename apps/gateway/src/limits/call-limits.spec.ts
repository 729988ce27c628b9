import {
  AccountServiceService,
  BackupServiceService,
  DeviceServiceService,
  KeysServiceService,
  MessagingServiceService,
  VaultServiceService,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { AccountsController } from '../accounts/accounts.controller';
import { isPublic } from '../auth/device-auth.guard';
import { BackupsController } from '../backups/backups.controller';
import { DevicesController } from '../devices/devices.controller';
import { KeysController } from '../keys/keys.controller';
import { MessagingController } from '../messaging/messaging.controller';
import { VaultController } from '../vault/vault.controller';
import {
  CALL_LIMITS,
  LIMIT_NAMES,
  REFUSALS,
  MULTI_RECIPIENT_LIMIT_AFTER_ACCESS,
  SEALED_SEND_LIMIT_AFTER_ACCESS,
  type LimitRule,
} from './call-limits';

const SERVICES = [
  [AccountServiceService, AccountsController],
  [KeysServiceService, KeysController],
  [MessagingServiceService, MessagingController],
  [BackupServiceService, BackupsController],
  [VaultServiceService, VaultController],
  [DeviceServiceService, DevicesController],
] as const;

/** Every public method: its path, whether it is @Public(), and its limits. */
const methods = SERVICES.flatMap(([service, controller]) =>
  (Object.entries(service) as [string, { readonly path: string }][]).map(([name, definition]) => {
    const handler = (controller.prototype as unknown as Record<string, unknown>)[name];
    if (typeof handler !== 'function') throw new Error(`${controller.name} has no ${name}`);
    return {
      path: definition.path,
      open: isPublic(handler),
      rules: (CALL_LIMITS as Record<string, readonly LimitRule[] | undefined>)[definition.path],
    };
  }),
);

describe('the call limits table', () => {
  it('names every method of the public API, and nothing else', () => {
    expect(Object.keys(CALL_LIMITS).sort()).toEqual(methods.map((method) => method.path).sort());
  });

  it('limits every authenticated method per device or per account', () => {
    for (const { path, open, rules } of methods.filter((method) => !method.open)) {
      expect({ path, open, limited: rules?.some((rule) => rule.per !== 'source') }).toEqual({
        path,
        open: false,
        limited: true,
      });
    }
  });

  it('limits unauthenticated methods by address only, except vault logins, which the key-vault limits', () => {
    const open = methods.filter((method) => method.open);
    expect(Object.fromEntries(open.map(({ path, rules }) => [path, rules]))).toEqual({
      '/sotto.gateway.v1.AccountService/Register': [{ limit: 'register_per_source', per: 'source' }],
      '/sotto.gateway.v1.AccountService/RecoverAccount': [
        { limit: 'recover_account_per_source', per: 'source' },
      ],
      '/sotto.gateway.v1.MessagingService/SendSealed': [{ limit: 'sealed_send_per_source', per: 'source' }],
      '/sotto.gateway.v1.MessagingService/SendMultiRecipient': [
        { limit: 'multi_recipient_send_per_source', per: 'source' },
      ],
      '/sotto.gateway.v1.VaultService/StartVaultLogin': [],
      '/sotto.gateway.v1.VaultService/FinishVaultLogin': [],
      '/sotto.gateway.v1.DeviceService/CreateLink': [{ limit: 'create_link_per_source', per: 'source' }],
      '/sotto.gateway.v1.DeviceService/WaitForLink': [{ limit: 'wait_for_link_per_source', per: 'source' }],
      '/sotto.gateway.v1.DeviceService/CompleteLink': [{ limit: 'complete_link_per_source', per: 'source' }],
    });
  });

  it('uses every limit it names, and says something for each', () => {
    const used = new Set(Object.values(CALL_LIMITS).flatMap((rules) => rules.map((rule) => rule.limit)));
    used.add(SEALED_SEND_LIMIT_AFTER_ACCESS);
    used.add(MULTI_RECIPIENT_LIMIT_AFTER_ACCESS);
    expect([...used].sort()).toEqual([...LIMIT_NAMES].sort());
    for (const name of LIMIT_NAMES) expect(REFUSALS[name]).toMatch(/^too many /);
  });
});
