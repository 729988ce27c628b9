import { Injectable } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import { grpcError, refuse } from '@sotto/platform/grpc';
import type { AccountId, DeviceId } from '@sotto/platform/ids';
import { AccountsRepository } from '../accounts/accounts.repository';
import { FetchRateLimit } from './fetch-rate-limit';
import { OneTimeKeyBudget } from './one-time-key-budget';
import type { UploadPreKeysRequest } from '@sotto/contracts/generated/sotto/directory/v1/directory';
import { parseIdentityKey, validateKeys } from './key-validation';
import {
  PreKeysRepository,
  type BundleDevice,
  type PreKeyCounts,
  type StoredBundle,
} from './prekeys.repository';

/** No device keeps more one-time keys of each kind than this. */
export const MAX_STORED_ONE_TIME_KEYS = 1000;

/** The keys of an UploadPreKeys request; the device they are for is passed on its own. */
export type RefillInput = Omit<UploadPreKeysRequest, 'accountId' | 'deviceId'>;

@Injectable()
export class PreKeysService {
  constructor(
    private readonly prekeys: PreKeysRepository,
    private readonly accounts: AccountsRepository,
    private readonly rateLimit: FetchRateLimit,
    private readonly budget: OneTimeKeyBudget,
  ) {}

  async bundles(
    requester: AccountId,
    target: AccountId,
    deviceId: DeviceId | undefined,
  ): Promise<{
    identityKey: Uint8Array;
    bundles: StoredBundle[];
  }> {
    await this.rateLimit.hit(requester, target);
    const identityKey = await this.accounts.identityKey(target);
    if (!identityKey) throw grpcError(status.NOT_FOUND, 'target_account_id: no such account');
    const devices = await this.prekeys.bundleDevices(target, deviceId);
    if (devices.length === 0) throw grpcError(status.NOT_FOUND, 'target_device_id: no such device');
    const bundles = await Promise.all(devices.map((device) => this.bundle(target, device)));
    return { identityKey, bundles };
  }

  /**
   * A device's bundle, with one-time keys while its budget lasts. The budget
   * is taken before the claim, so no number of concurrent fetches hands out
   * more than it; a device that had no one-time key left gets it back.
   */
  private async bundle(target: AccountId, device: BundleDevice): Promise<StoredBundle> {
    const grant = await this.budget.take(target, device.device_id);
    const bundle = await this.prekeys.claimBundle(target, device, grant !== undefined);
    if (grant && bundle.oneTimePreKey === undefined && bundle.kyberLastResort) await grant.release();
    return bundle;
  }

  count(accountId: AccountId, deviceId: DeviceId): Promise<PreKeyCounts> {
    return this.prekeys.count(accountId, deviceId);
  }

  /** Validates a refill against the account's identity key, then stores it. */
  async refill(accountId: AccountId, deviceId: DeviceId, input: RefillInput): Promise<PreKeyCounts> {
    const identityKey = await this.accounts.identityKey(accountId);
    if (!identityKey) throw grpcError(status.NOT_FOUND, 'account_id: no such account');
    const keys = validateKeys(
      parseIdentityKey(identityKey),
      {
        signedPreKey: input.signedPreKey,
        kyberLastResort: input.kyberLastResortPreKey,
        oneTimeEc: input.oneTimePreKeys,
        oneTimeKyber: input.oneTimeKyberPreKeys,
      },
      {
        prefix: '',
        signedPreKey: 'signed_pre_key',
        kyberLastResort: 'kyber_last_resort_pre_key',
        oneTimeEc: 'one_time_pre_keys',
        oneTimeKyber: 'one_time_kyber_pre_keys',
      },
    );
    const before = await this.prekeys.count(accountId, deviceId);
    if (before.ec + keys.oneTimeEc.length > MAX_STORED_ONE_TIME_KEYS) {
      throw refuse('quota', `one_time_pre_keys: a device keeps at most ${MAX_STORED_ONE_TIME_KEYS}`);
    }
    if (before.kyber + keys.oneTimeKyber.length > MAX_STORED_ONE_TIME_KEYS) {
      throw refuse('quota', `one_time_kyber_pre_keys: a device keeps at most ${MAX_STORED_ONE_TIME_KEYS}`);
    }
    await this.prekeys.store(accountId, deviceId, keys);
    return this.prekeys.count(accountId, deviceId);
  }
}
