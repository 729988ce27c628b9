import type { AccountId, DeviceId } from '@sotto/platform/ids';
import { Groups } from '../groups';

/** The device a call comes from, as its credential proved. */
export interface AuthenticatedDevice {
  readonly accountId: AccountId;
  readonly deviceId: DeviceId;
}

export interface CredentialCacheOptions {
  readonly ttlMs: number;
  readonly maxEntries: number;
}

interface Entry {
  readonly device: AuthenticatedDevice;
  readonly expires: number;
}

/**
 * Successful authentications this gateway remembers, keyed by a hash of the
 * credential, so a busy device does not cost the directory a call per
 * request. Bounded: past `maxEntries` the oldest go first. It trusts an entry
 * only while the revocations that could void it are being heard: revocations
 * drop a device's entries, and while the revocation channel is down the cache
 * is suspended (empty, and keeps nothing), since what was published meanwhile
 * is lost.
 *
 * Each revocation moves the generation on. An authentication remembers the
 * generation it started in and is kept only if none passed while the
 * directory was asked, so a check that raced a revocation is never cached.
 */
export class CredentialCache {
  // Insertion order is age order: the first entry is the oldest.
  private readonly entries = new Map<string, Entry>();
  private readonly keysByAccount = new Groups<string, string>();
  private currentGeneration = 0;
  private listening = false;

  constructor(
    private readonly options: CredentialCacheOptions,
    private readonly now: () => number = Date.now,
  ) {}

  get generation(): number {
    return this.currentGeneration;
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string): AuthenticatedDevice | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expires <= this.now()) {
      this.delete(key, entry);
      return undefined;
    }
    return entry.device;
  }

  /** Remembers a success that began in `generation`, unless a revocation came since or none can be heard. */
  remember(key: string, device: AuthenticatedDevice, generation: number): void {
    if (!this.listening || generation !== this.currentGeneration) return;
    const existing = this.entries.get(key);
    if (existing) this.delete(key, existing);
    while (this.entries.size >= this.options.maxEntries) {
      const oldest = this.entries.entries().next();
      if (oldest.done) break;
      this.delete(oldest.value[0], oldest.value[1]);
    }
    this.entries.set(key, { device, expires: this.now() + this.options.ttlMs });
    this.keysByAccount.add(device.accountId, key);
  }

  /** Drops what is remembered of these devices of an account. */
  revoke(accountId: string, deviceIds: readonly number[]): void {
    this.currentGeneration++;
    for (const key of this.keysByAccount.get(accountId)) {
      const entry = this.entries.get(key);
      if (entry && deviceIds.includes(entry.device.deviceId)) this.delete(key, entry);
    }
  }

  /** Revocations can no longer be heard: forget everything and remember nothing until they can. */
  suspend(): void {
    this.listening = false;
    this.clear();
  }

  /**
   * Revocations are heard again. Any published while they were not are lost,
   * so nothing remembered from before counts.
   */
  resume(): void {
    this.clear();
    this.listening = true;
  }

  private clear(): void {
    this.currentGeneration++;
    this.entries.clear();
    this.keysByAccount.clear();
  }

  private delete(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.keysByAccount.delete(entry.device.accountId, key);
  }
}
