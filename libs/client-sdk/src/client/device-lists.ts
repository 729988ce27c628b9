import { status } from '@grpc/grpc-js';
import type { IdentityKeyPair, PublicKey } from '@signalapp/libsignal-client';
import {
  DeviceListContent,
  type SignedDeviceList,
} from '@sotto/contracts/generated/sotto/common/v1/device_list';
import {
  decodeSignedDeviceList,
  deviceListChanges,
  encodeSignedDeviceList,
  signDeviceList,
  verifyDeviceList,
  type DeviceList,
} from '../device-list';
import { SottoError } from '../errors';
import type { AccountFile, Profile } from '../profile';
import type { KeptDeviceList } from '../provisioning';
import type { GatewayConnection } from './connection';
import type { Notices } from './notices';

export const DEVICE_LISTS_FILE = 'device-lists.json';

/** The list inside a kept one; it was verified when it was kept. Undefined when none is kept. */
function keptList(kept: KeptDeviceList | undefined): DeviceList | undefined {
  if (!kept || kept.list === '') return undefined;
  const content = DeviceListContent.decode(decodeSignedDeviceList(kept.list).content);
  return {
    accountId: content.accountId,
    version: BigInt(content.version),
    devices: content.devices,
    signedAtMs: Number(content.signedAtMs),
  };
}

/**
 * The signed device lists of the accounts this device sends to, its own
 * included: fetched from the server, verified under the identity key this
 * device trusts for the account, never accepted below the highest version
 * seen, and kept in the profile (device-lists.json). Messages go only to
 * the devices on a list that verified. A contact's list that gains or loses
 * a device is told as a notice.
 */
export class DeviceLists {
  private ownChecked = false;

  constructor(
    private readonly profile: Profile,
    private readonly connection: GatewayConnection,
    private readonly own: Pick<AccountFile, 'accountId' | 'deviceId' | 'registrationId'>,
    private readonly ownIdentity: IdentityKeyPair,
    /** The identity key accepted for a contact, if any. */
    private readonly trustedKey: (accountId: string) => PublicKey | null,
    private readonly name: (accountId: string) => string,
    private readonly notices: Notices,
  ) {}

  read(): Record<string, KeptDeviceList> {
    return (this.profile.readJson(DEVICE_LISTS_FILE) as Record<string, KeptDeviceList> | undefined) ?? {};
  }

  private keep(accountId: string, signed: SignedDeviceList, version: bigint): void {
    const lists = this.read();
    const highest = BigInt(lists[accountId]?.highest ?? '0');
    lists[accountId] = {
      list: encodeSignedDeviceList(signed),
      highest: (version > highest ? version : highest).toString(),
    };
    this.profile.writeJson(DEVICE_LISTS_FILE, lists);
  }

  /** The list kept for the account, as last verified; undefined when none is. */
  kept(accountId: string): DeviceList | undefined {
    return keptList(this.read()[accountId]);
  }

  /** The account's list as signed, as kept (base64), for a new device of this account. */
  keptSigned(accountId: string): string | undefined {
    const kept = this.read()[accountId];
    return kept && kept.list !== '' ? kept.list : undefined;
  }

  /**
   * Forgets the account's list but not the highest version seen: after the
   * user accepted a contact's new identity key, the old list (signed by the
   * old key) is no longer theirs.
   */
  forget(accountId: string): void {
    const lists = this.read();
    const kept = lists[accountId];
    if (!kept) return;
    lists[accountId] = { list: '', highest: kept.highest };
    this.profile.writeJson(DEVICE_LISTS_FILE, lists);
  }

  /** The account's verified list: the kept one, or (with `refresh`, or none kept) the server's, checked. */
  async current(accountId: string, options: { refresh?: boolean } = {}): Promise<DeviceList> {
    const kept = options.refresh ? undefined : this.kept(accountId);
    return kept ?? this.fetch(accountId);
  }

  /** GetDeviceList, verified and kept; a device added or removed is told. */
  private async fetch(accountId: string): Promise<DeviceList> {
    const who = this.name(accountId);
    let signed: SignedDeviceList | undefined;
    try {
      ({ deviceList: signed } = await this.connection.call(
        this.connection.devices.getDeviceList.bind(this.connection.devices),
        { accountId },
      ));
    } catch (error) {
      if (error instanceof SottoError && error.code === status.NOT_FOUND) {
        throw new SottoError(`${who} has no signed device list on the server: not sending`, status.NOT_FOUND);
      }
      throw error;
    }
    if (!signed) throw new SottoError(`the server gave no device list for ${who}: not sending`);
    const key = accountId === this.own.accountId ? this.ownIdentity.publicKey : this.trustedKey(accountId);
    if (!key) throw new SottoError(`no identity key known for ${who}, so their device list can't be checked`);
    const before = this.read()[accountId];
    const list = verifyDeviceList(signed, key, {
      accountId,
      name: who,
      ...(before && { highestSeen: BigInt(before.highest) }),
    });
    this.keep(accountId, signed, list.version);
    const previous = keptList(before);
    if (previous && accountId !== this.own.accountId) {
      const { added, removed } = deviceListChanges(previous, list);
      const at = new Date().toISOString();
      for (const deviceId of added) this.notices.record({ kind: 'device-added', contact: who, at, deviceId });
      for (const deviceId of removed)
        this.notices.record({ kind: 'device-removed', contact: who, at, deviceId });
    }
    return list;
  }

  /**
   * Fetches the contact's list again when a device the kept list does not
   * name wrote from their account; a list that can't be had or checked now
   * is left for the next send, which needs it.
   */
  async heardFrom(accountId: string, deviceId: number): Promise<void> {
    const kept = this.kept(accountId);
    if (!kept || kept.devices.some((device) => device.deviceId === deviceId)) return;
    await this.fetch(accountId).catch(() => undefined);
  }

  /**
   * Signs and publishes (SetDeviceList) a list of this device alone, as the
   * account's only device after Register or account recovery. A recovered
   * account's old list is signed by its old key and withdrawn, but its
   * version stands: `version` must be above it.
   */
  async publishAlone(version: bigint): Promise<void> {
    const signed = signDeviceList(
      {
        accountId: this.own.accountId,
        version,
        devices: [{ deviceId: this.own.deviceId, registrationId: this.own.registrationId }],
        signedAtMs: Date.now(),
      },
      this.ownIdentity.privateKey,
    );
    await this.connection.call(this.connection.devices.setDeviceList.bind(this.connection.devices), {
      deviceList: signed,
    });
    this.keep(this.own.accountId, signed, version);
  }

  /**
   * Signs and keeps a list this device made for its own account (a device
   * added or removed); the caller hands it to the server.
   */
  signOwn(list: DeviceList): SignedDeviceList {
    return signDeviceList(list, this.ownIdentity.privateKey);
  }

  keepOwn(signed: SignedDeviceList, version: bigint): void {
    this.keep(this.own.accountId, signed, version);
  }

  /**
   * Once per client: makes sure the account has a signed list on the server,
   * publishing one of this device alone (at a version above any a step-by-step
   * list reaches: the time) when it has none, as after an interrupted recovery.
   * Failures are left for the sends that need the list to report.
   */
  async ensurePublished(): Promise<void> {
    if (this.ownChecked) return;
    this.ownChecked = true;
    // Best effort: what goes wrong here (no server, a list that does not verify) shows when a send needs the list.
    try {
      await this.fetch(this.own.accountId);
    } catch (error) {
      if (error instanceof SottoError && error.code === status.NOT_FOUND)
        await this.publishAlone(BigInt(Date.now())).catch(() => undefined);
    }
  }
}

/** A profile's kept list of an account, decoded, for code outside this class (linking). */
export function decodeKeptList(kept: KeptDeviceList | undefined): DeviceList | undefined {
  return keptList(kept);
}
