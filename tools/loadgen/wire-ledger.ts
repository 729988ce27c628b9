/**
 * The wire load generator's book of what was sent and what arrived. Each
 * envelope's content starts with its sequence number (8 bytes, big-endian)
 * and is otherwise one random block, the same for all, so a delivery names
 * its send and any changed byte shows. The server's GUIDs, from Send's
 * answers and on the envelopes delivered, tell lost and duplicated apart:
 *
 * - lost: Send answered with a GUID that was never delivered;
 * - duplicated: a delivery of a GUID, or of a sequence number, delivered before; of them
 *   - redelivered: the same GUID again (an envelope sent again after a lost ack), which the
 *     SDK and the CLI drop by GUID, so the user never sees it;
 *   - shownTwice: a send delivered again under another GUID, which no client can tell from a
 *     new message: a user-visible duplicate;
 * - unconfirmed: delivered, but its Send failed or never answered with that GUID;
 * - corrupted: delivered with content other than what was sent.
 */
export const SEQUENCE_BYTES = 8;

/** The content of envelope `sequence`: its number, then `filler` after it. */
export function envelopeContent(sequence: number, filler: Uint8Array): Buffer {
  const content = Buffer.allocUnsafe(filler.length);
  content.set(filler);
  content.writeBigUInt64BE(BigInt(sequence), 0);
  return content;
}

export interface DeliveryCounts {
  /** Send calls made. */
  readonly sent: number;
  /** Sends the gateway answered with a GUID. */
  readonly confirmed: number;
  /** Sends that failed, by gRPC status name. */
  readonly sendErrors: Readonly<Record<string, number>>;
  /** Distinct envelopes delivered (first deliveries). */
  readonly delivered: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly redelivered: number;
  readonly shownTwice: number;
  readonly unconfirmed: number;
  readonly corrupted: number;
}

export class DeliveryLedger {
  private readonly sentAt: number[] = [];
  private readonly confirmedGuids = new Map<string, number>();
  private readonly deliveredGuids = new Set<string>();
  private readonly deliveredSequences = new Set<number>();
  private readonly errors: Record<string, number> = {};
  /** Confirmed GUIDs that were also delivered. */
  private matched = 0;
  private redeliveries = 0;
  private copies = 0;
  private corrupt = 0;
  private inFlight = 0;
  private settledListeners: (() => void)[] = [];

  constructor(private readonly filler: Uint8Array) {}

  /** A Send is about to be made; returns its sequence number. */
  sending(now: number): number {
    this.inFlight++;
    return this.sentAt.push(now) - 1;
  }

  confirmed(sequence: number, guid: string): void {
    this.confirmedGuids.set(guid, sequence);
    if (this.deliveredGuids.has(guid)) this.matched++;
    this.settle();
  }

  failed(code: string): void {
    this.errors[code] = (this.errors[code] ?? 0) + 1;
    this.settle();
  }

  /**
   * An envelope arrived. Returns its send→delivered milliseconds on its first
   * delivery, undefined for a duplicate or one that names no send of ours.
   */
  delivered(guid: string, content: Uint8Array, now: number): number | undefined {
    const firstOfGuid = !this.deliveredGuids.has(guid);
    const sequence =
      content.length >= SEQUENCE_BYTES
        ? Number(Buffer.from(content.buffer, content.byteOffset, content.length).readBigUInt64BE(0))
        : -1;
    const sentAt = this.sentAt[sequence];
    if (sentAt === undefined || !this.intact(content)) this.corrupt++;
    if (!firstOfGuid) {
      this.redeliveries++;
      return undefined;
    }
    if (this.deliveredSequences.has(sequence)) {
      this.copies++;
      return undefined;
    }
    this.deliveredGuids.add(guid);
    this.deliveredSequences.add(sequence);
    if (this.confirmedGuids.has(guid)) this.matched++;
    this.notifyIfComplete();
    return sentAt === undefined ? undefined : now - sentAt;
  }

  /** Every Send answered and every confirmed GUID delivered. */
  get complete(): boolean {
    return this.inFlight === 0 && this.matched === this.confirmedGuids.size;
  }

  /** Resolves once complete. */
  whenComplete(): Promise<void> {
    if (this.complete) return Promise.resolve();
    return new Promise((resolve) => this.settledListeners.push(resolve));
  }

  counts(): DeliveryCounts {
    return {
      sent: this.sentAt.length,
      confirmed: this.confirmedGuids.size,
      sendErrors: { ...this.errors },
      delivered: this.deliveredGuids.size,
      lost: this.confirmedGuids.size - this.matched,
      duplicated: this.redeliveries + this.copies,
      redelivered: this.redeliveries,
      shownTwice: this.copies,
      unconfirmed: this.deliveredGuids.size - this.matched,
      corrupted: this.corrupt,
    };
  }

  /** Up to `limit` confirmed sends not delivered yet: their GUID, sequence number and send time. */
  missing(limit = 20): { guid: string; sequence: number; sentAt: number }[] {
    const found: { guid: string; sequence: number; sentAt: number }[] = [];
    for (const [guid, sequence] of this.confirmedGuids) {
      if (found.length >= limit) break;
      if (!this.deliveredGuids.has(guid))
        found.push({ guid, sequence, sentAt: this.sentAt[sequence] ?? NaN });
    }
    return found;
  }

  private intact(content: Uint8Array): boolean {
    return (
      content.length === this.filler.length &&
      Buffer.compare(content.subarray(SEQUENCE_BYTES), this.filler.subarray(SEQUENCE_BYTES)) === 0
    );
  }

  private settle(): void {
    this.inFlight--;
    this.notifyIfComplete();
  }

  private notifyIfComplete(): void {
    if (this.complete) this.settledListeners.splice(0).forEach((resolve) => resolve());
  }
}
