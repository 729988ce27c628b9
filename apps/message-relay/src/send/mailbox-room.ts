import type { DeviceAddress, MailboxUsage } from '../mailbox/mailbox.store';

/** The caps a mailbox is checked against before a Send is logged. */
export interface MailboxCaps {
  readonly envelopes: number;
  readonly bytes: number;
}

export interface MailboxRoomOptions {
  /** How long an estimate lives after Redis's answer started it, in ms; 0: always ask. */
  readonly ttlMs: number;
  /** Most mailboxes remembered; the oldest estimates go first. */
  readonly maxMailboxes: number;
  readonly now: () => number;
}

interface Estimate {
  envelopes: number;
  bytes: number;
  readonly startedAtMs: number;
}

/**
 * What this relay knows of each mailbox's room, so that a Send to a mailbox
 * far from its caps costs no round trip to Redis. An estimate starts from the
 * usage Redis gives when the relay first asks, counts every envelope this
 * relay accepts for the mailbox from then on (routed yet or not), rises to
 * any higher usage Redis gives meanwhile, and is forgotten `ttlMs` after it
 * started. It answers for a Send only while it is at most half of each cap
 * with the new envelope counted; past half, every Send asks Redis and is
 * decided by Redis's answer, as without the estimate.
 *
 * An estimate can be short of the truth by what was accepted but not yet
 * routed when it started, and by what other relays accepted since; a mailbox
 * goes past its cap through it only if that is more than half the cap (25,000
 * envelopes at the default cap, far past any sender's rate limit).
 * Acknowledgements only leave it too high until it is forgotten, which costs
 * round trips, never a wrong refusal.
 */
export class MailboxRoom {
  // In the order they started: the oldest go first.
  private readonly estimates = new Map<string, Estimate>();

  constructor(
    private readonly caps: MailboxCaps,
    private readonly options: MailboxRoomOptions,
  ) {}

  /**
   * The estimated usage of the device's mailbox if it may be trusted for an
   * envelope of `bytes` more; undefined when Redis must be asked.
   */
  estimate(device: DeviceAddress, bytes: number): MailboxUsage | undefined {
    if (this.options.ttlMs === 0) return undefined;
    const key = keyOf(device);
    const estimate = this.estimates.get(key);
    if (estimate === undefined) return undefined;
    if (this.options.now() - estimate.startedAtMs >= this.options.ttlMs) {
      this.estimates.delete(key);
      return undefined;
    }
    const farFromCaps =
      2 * (estimate.envelopes + 1) <= this.caps.envelopes && 2 * (estimate.bytes + bytes) <= this.caps.bytes;
    return farFromCaps ? { envelopes: estimate.envelopes, bytes: estimate.bytes } : undefined;
  }

  /**
   * Redis's answer for the mailbox, read now. It starts an estimate, or raises
   * one to it; never lowers one: Redis has not yet counted what this relay
   * accepted and the router has not yet written.
   */
  checked(device: DeviceAddress, usage: MailboxUsage): void {
    if (this.options.ttlMs === 0) return;
    const key = keyOf(device);
    const now = this.options.now();
    const current = this.estimates.get(key);
    if (current !== undefined && now - current.startedAtMs < this.options.ttlMs) {
      current.envelopes = Math.max(current.envelopes, usage.envelopes);
      current.bytes = Math.max(current.bytes, usage.bytes);
      return;
    }
    this.estimates.delete(key);
    this.estimates.set(key, { envelopes: usage.envelopes, bytes: usage.bytes, startedAtMs: now });
    for (const oldest of this.estimates.keys()) {
      if (this.estimates.size <= this.options.maxMailboxes) break;
      this.estimates.delete(oldest);
    }
  }

  /** An envelope of `bytes` is on its way into the mailbox: the estimate counts it from now. */
  added(device: DeviceAddress, bytes: number): void {
    const estimate = this.estimates.get(keyOf(device));
    if (estimate === undefined) return;
    estimate.envelopes += 1;
    estimate.bytes += bytes;
  }

  /** Mailboxes remembered now. */
  get size(): number {
    return this.estimates.size;
  }
}

function keyOf(device: DeviceAddress): string {
  return `${device.accountId}:${device.deviceId}`;
}
