import { Inject, Injectable } from '@nestjs/common';
import type { Metadata } from '@grpc/grpc-js';
import {
  AccountServiceService,
  BackupServiceService,
  DeviceServiceService,
  KeysServiceService,
  MessagingServiceService,
  VaultServiceService,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { throttled } from '@sotto/platform/grpc';
import { parseAccountId } from '@sotto/platform/ids';
import { RateLimiter, type RateLimit } from '@sotto/platform/redis';
import { clientSource } from '../auth/client-source';
import { callerOf } from '../auth/device-auth.guard';

/** The gateway's own limits, by the name they have in metrics and in RATE_LIMIT_* (upper-cased). */
export const LIMIT_NAMES = [
  'register_per_source',
  'recover_account_per_source',
  'send_per_device',
  'send_per_destination',
  'sealed_send_per_source',
  'sealed_send_per_destination',
  'multi_recipient_send_per_source',
  'multi_recipient_send_per_destination',
  'lookup_username_per_account',
  'lookup_account_per_account',
  'prekey_bundles_per_account',
  'connect_per_device',
  'other_calls_per_device',
  'create_link_per_source',
  'wait_for_link_per_source',
  'complete_link_per_source',
  'approve_link_per_account',
  'device_lists_per_account',
] as const;
export type LimitName = (typeof LIMIT_NAMES)[number];

/**
 * Whom a call is counted against: its client address (IPv4, or an IPv6 /64),
 * the authenticated device or its account, or the account a Send is for.
 */
export type Subject = 'source' | 'device' | 'account' | 'destination';

export interface LimitRule {
  readonly limit: LimitName;
  readonly per: Subject;
}

type PathOf<Method> = Method extends { readonly path: infer Path } ? Path : never;
type PathsOf<Service> = PathOf<Service[keyof Service]>;
/** Every method of the public API; a method added to the contract does not compile until the table has it. */
export type GatewayPath =
  | PathsOf<typeof AccountServiceService>
  | PathsOf<typeof KeysServiceService>
  | PathsOf<typeof MessagingServiceService>
  | PathsOf<typeof BackupServiceService>
  | PathsOf<typeof VaultServiceService>
  | PathsOf<typeof DeviceServiceService>;

const OTHER: readonly LimitRule[] = [{ limit: 'other_calls_per_device', per: 'device' }];

/**
 * The limits every public method is subject to, checked in this order once
 * the caller is authenticated (failed authentications have limits of their
 * own, in AuthFailureLimits).
 */
export const CALL_LIMITS: { readonly [Path in GatewayPath]: readonly LimitRule[] } = {
  [AccountServiceService.register.path]: [{ limit: 'register_per_source', per: 'source' }],
  [AccountServiceService.recoverAccount.path]: [{ limit: 'recover_account_per_source', per: 'source' }],
  [AccountServiceService.lookupUsername.path]: [{ limit: 'lookup_username_per_account', per: 'account' }],
  [AccountServiceService.lookupAccount.path]: [{ limit: 'lookup_account_per_account', per: 'account' }],
  [AccountServiceService.setRecoveryCredential.path]: OTHER,
  [AccountServiceService.rotateDeviceSecret.path]: OTHER,
  // A client keeps its certificate until shortly before it expires: a day's worth is one call.
  [AccountServiceService.getSenderCertificate.path]: OTHER,
  [AccountServiceService.setUnidentifiedAccess.path]: OTHER,
  [KeysServiceService.getPreKeyBundle.path]: [{ limit: 'prekey_bundles_per_account', per: 'account' }],
  [KeysServiceService.getPreKeyCount.path]: OTHER,
  [KeysServiceService.uploadPreKeys.path]: OTHER,
  // Per sender first: a device refused for its destination gets its own token back.
  [MessagingServiceService.send.path]: [
    { limit: 'send_per_device', per: 'device' },
    { limit: 'send_per_destination', per: 'destination' },
  ],
  [MessagingServiceService.connect.path]: [{ limit: 'connect_per_device', per: 'device' }],
  // Unauthenticated: per address here, and per destination only once the access key is accepted
  // (SEALED_SEND_LIMIT_AFTER_ACCESS), so that nobody without the key can spend a mailbox's budget.
  [MessagingServiceService.sendSealed.path]: [{ limit: 'sealed_send_per_source', per: 'source' }],
  // Likewise: per address here, per recipient once the combined key is accepted
  // (MULTI_RECIPIENT_LIMIT_AFTER_ACCESS).
  [MessagingServiceService.sendMultiRecipient.path]: [
    { limit: 'multi_recipient_send_per_source', per: 'source' },
  ],
  [BackupServiceService.createBackupUpload.path]: OTHER,
  [BackupServiceService.uploadBackup.path]: OTHER,
  [BackupServiceService.getBackupUpload.path]: OTHER,
  [BackupServiceService.cancelBackupUpload.path]: OTHER,
  [BackupServiceService.getBackupStatus.path]: OTHER,
  [BackupServiceService.downloadBackup.path]: OTHER,
  [VaultServiceService.startVaultRegistration.path]: OTHER,
  [VaultServiceService.finishVaultRegistration.path]: OTHER,
  // Unauthenticated: the key-vault limits logins per account and per address (VAULT_LOGIN_LIMIT_*),
  // and a finish only goes on with a login that was started.
  [VaultServiceService.startVaultLogin.path]: [],
  [VaultServiceService.finishVaultLogin.path]: [],
  [VaultServiceService.deleteVault.path]: OTHER,
  [VaultServiceService.resetVaultAttempts.path]: OTHER,
  // Unauthenticated: the token is the proof, so per address; a link code lives minutes, and only a
  // device of the account can approve it.
  [DeviceServiceService.createLink.path]: [{ limit: 'create_link_per_source', per: 'source' }],
  [DeviceServiceService.waitForLink.path]: [{ limit: 'wait_for_link_per_source', per: 'source' }],
  [DeviceServiceService.completeLink.path]: [{ limit: 'complete_link_per_source', per: 'source' }],
  [DeviceServiceService.approveLink.path]: [{ limit: 'approve_link_per_account', per: 'account' }],
  [DeviceServiceService.listDevices.path]: OTHER,
  [DeviceServiceService.removeDevice.path]: OTHER,
  [DeviceServiceService.setDeviceList.path]: OTHER,
  // A sender verifies the list of every account it writes to, as it fetches their prekey bundles.
  [DeviceServiceService.getDeviceList.path]: [{ limit: 'device_lists_per_account', per: 'account' }],
};

/** What a refused caller is told, before "; retry in N s". */
export const REFUSALS: { readonly [Name in LimitName]: string } = {
  register_per_source: 'too many registrations from this address',
  recover_account_per_source: 'too many account recoveries from this address',
  send_per_device: 'too many messages sent from this device',
  send_per_destination: 'too many messages sent to this account',
  sealed_send_per_source: 'too many sealed messages sent from this address',
  sealed_send_per_destination: 'too many sealed messages sent to this account',
  multi_recipient_send_per_source: 'too many group messages sent from this address',
  multi_recipient_send_per_destination: 'too many group messages sent to one of the recipients',
  lookup_username_per_account: 'too many username lookups by this account',
  lookup_account_per_account: 'too many account lookups by this account',
  prekey_bundles_per_account: 'too many prekey bundles fetched by this account',
  connect_per_device: 'too many connections from this device',
  other_calls_per_device: 'too many calls from this device',
  create_link_per_source: 'too many link codes made from this address',
  wait_for_link_per_source: 'too many waits for a link from this address',
  complete_link_per_source: 'too many links completed from this address',
  approve_link_per_account: 'too many links approved by this account',
  device_lists_per_account: 'too many device lists fetched by this account',
};

/** SendSealed's limit per destination, taken by the handler once the destination's access key is accepted. */
export const SEALED_SEND_LIMIT_AFTER_ACCESS: LimitName = 'sealed_send_per_destination';

/** SendMultiRecipient's limit per recipient, taken by the handler once the combined access key is accepted. */
export const MULTI_RECIPIENT_LIMIT_AFTER_ACCESS: LimitName = 'multi_recipient_send_per_destination';

export const CALL_LIMIT_RATES = Symbol('CALL_LIMIT_RATES');
export type CallLimitRates = { readonly [Name in LimitName]: RateLimit };

/** A call as the limits see it. */
export interface LimitedCall {
  /** grpc-js's method path. */
  readonly path: string;
  /** grpc-js's peer string. */
  readonly peer: string;
  readonly metadata: Metadata;
  /** The decoded request; for a client stream, not a message. */
  readonly request: unknown;
}

function destinationOf(request: unknown): string | undefined {
  const destination =
    typeof request === 'object' && request !== null
      ? (request as { destinationAccountId?: unknown }).destinationAccountId
      : undefined;
  // A malformed destination is refused by the relay, having spent nothing.
  return typeof destination === 'string' && parseAccountId(destination).ok ? destination : undefined;
}

/**
 * Admits a call or refuses it with RESOURCE_EXHAUSTED and `retry-after-ms`,
 * by the table above and the token buckets of RateLimiter (shared by every
 * gateway through Redis).
 */
@Injectable()
export class CallLimits {
  constructor(
    private readonly limiter: RateLimiter,
    @Inject(CALL_LIMIT_RATES) private readonly rates: CallLimitRates,
  ) {}

  async admit(call: LimitedCall): Promise<void> {
    const rules: readonly LimitRule[] =
      (CALL_LIMITS as Record<string, readonly LimitRule[] | undefined>)[call.path] ?? [];
    const taken: [LimitName, string][] = [];
    for (const { limit, per } of rules) {
      const subject = this.subjectOf(per, call);
      if (subject === undefined) continue;
      const result = await this.limiter.take(limit, subject, this.rates[limit]);
      if (!result.allowed) {
        // A call refused by a later limit spends nothing of the earlier ones.
        await Promise.all(taken.map(([name, key]) => this.limiter.refund(name, key, this.rates[name])));
        throw throttled(REFUSALS[limit], result.retryAfterMs);
      }
      taken.push([limit, subject]);
    }
  }

  /** One limit on its own, for a handler that knows its subject only once it has checked something. */
  async take(limit: LimitName, subject: string): Promise<void> {
    const result = await this.limiter.take(limit, subject, this.rates[limit]);
    if (!result.allowed) throw throttled(REFUSALS[limit], result.retryAfterMs);
  }

  /**
   * One limit for each of `subjects`, all or none: if any is refused, what
   * the others took is given back, and the refusal names `which` of them.
   */
  async takeEach(limit: LimitName, subjects: readonly string[]): Promise<void> {
    const rate = this.rates[limit];
    const results = await Promise.all(subjects.map((subject) => this.limiter.take(limit, subject, rate)));
    const refused = results.find((result) => !result.allowed);
    if (refused === undefined || refused.allowed) return;
    await Promise.all(
      subjects
        .filter((_, index) => results[index]?.allowed)
        .map((subject) => this.limiter.refund(limit, subject, rate)),
    );
    throw throttled(REFUSALS[limit], refused.retryAfterMs);
  }

  private subjectOf(per: Subject, call: LimitedCall): string | undefined {
    switch (per) {
      case 'source':
        return clientSource(call.peer);
      case 'device': {
        const { accountId, deviceId } = callerOf(call.metadata);
        return `${accountId}.${deviceId}`;
      }
      case 'account':
        return callerOf(call.metadata).accountId;
      case 'destination':
        return destinationOf(call.request);
    }
  }
}
