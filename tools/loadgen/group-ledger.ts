/**
 * The group load generator's book of uploads and copies. SendMultiRecipient
 * answers with no GUIDs, and the relay gives each copy a GUID of its own, so
 * a copy is named by what it carries: libsignal's copy for a recipient ends
 * with the bytes every copy of that upload shares (the ephemeral key and the
 * ciphertext of the sealed content, under a key drawn for that upload), which
 * are also the upload's last bytes. Every upload of a run is a message
 * encrypted for it, so those bytes name one upload; with the device the copy
 * was delivered to, they name one copy.
 *
 * - lost: a copy of an accepted upload never delivered to one of its recipients;
 * - duplicated: a copy delivered again to a device that already had it;
 * - unconfirmed: delivered, but its upload failed or was never answered;
 * - unexpected: delivered to a device not among its upload's recipients, or naming no upload.
 */

/** Bytes at the end of a copy (and of its upload) that name the upload. */
export const UPLOAD_TAIL_BYTES = 32;

export function uploadTail(content: Uint8Array): string {
  return Buffer.from(content.buffer, content.byteOffset, content.length)
    .subarray(Math.max(0, content.length - UPLOAD_TAIL_BYTES))
    .toString('hex');
}

export interface GroupDeliveryCounts {
  /** SendMultiRecipient calls made. */
  readonly uploads: number;
  /** Uploads the gateway accepted. */
  readonly accepted: number;
  /** Uploads refused or failed, by gRPC status name. */
  readonly uploadErrors: Readonly<Record<string, number>>;
  /** Copies the accepted uploads stand for: one per recipient device. */
  readonly expectedCopies: number;
  /** Distinct copies delivered (first deliveries). */
  readonly deliveredCopies: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly unconfirmed: number;
  readonly unexpected: number;
}

export class GroupLedger {
  private readonly byTail = new Map<string, number>();
  private readonly recipients: (ReadonlySet<string> | undefined)[] = [];
  private readonly startedAt: (number | undefined)[] = [];
  private readonly accepted = new Set<number>();
  /** First deliveries, per upload. */
  private readonly deliveredTo: (Set<string> | undefined)[] = [];
  private readonly errors: Record<string, number> = {};
  private started = 0;
  private firstDeliveries = 0;
  private expected = 0;
  /** First deliveries of accepted uploads. */
  private matched = 0;
  private repeats = 0;
  private strays = 0;
  private inFlight = 0;
  private settledListeners: (() => void)[] = [];

  /** Upload `message`, before it is sent: the bytes it ends with and the devices it is for. */
  register(message: number, upload: Uint8Array, recipients: ReadonlySet<string>): void {
    const tail = uploadTail(upload);
    if (this.byTail.has(tail)) throw new Error(`uploads ${this.byTail.get(tail)} and ${message} end alike`);
    this.byTail.set(tail, message);
    this.recipients[message] = recipients;
  }

  uploading(message: number, now: number): void {
    this.started++;
    this.inFlight++;
    this.startedAt[message] = now;
  }

  confirmed(message: number): void {
    this.accepted.add(message);
    this.expected += this.recipients[message]?.size ?? 0;
    this.matched += this.deliveredTo[message]?.size ?? 0;
    this.settle();
  }

  failed(code: string): void {
    this.errors[code] = (this.errors[code] ?? 0) + 1;
    this.settle();
  }

  /** The upload a delivered copy is of, if it names one. */
  uploadOf(content: Uint8Array): number | undefined {
    return this.byTail.get(uploadTail(content));
  }

  /**
   * A copy of upload `message` (from uploadOf) arrived at device `recipient`.
   * Returns its upload→delivered milliseconds on its first delivery,
   * undefined for a duplicate or a copy that is not one of ours.
   */
  delivered(message: number | undefined, recipient: string, now: number): number | undefined {
    const recipients = message === undefined ? undefined : this.recipients[message];
    if (message === undefined || recipients?.has(recipient) !== true) {
      this.strays++;
      return undefined;
    }
    const seen = (this.deliveredTo[message] ??= new Set());
    if (seen.has(recipient)) {
      this.repeats++;
      return undefined;
    }
    seen.add(recipient);
    this.firstDeliveries++;
    if (this.accepted.has(message)) this.matched++;
    this.notifyIfComplete();
    const startedAt = this.startedAt[message];
    return startedAt === undefined ? undefined : now - startedAt;
  }

  /** Every upload answered and every copy of the accepted ones delivered. */
  get complete(): boolean {
    return this.inFlight === 0 && this.matched === this.expected;
  }

  whenComplete(): Promise<void> {
    if (this.complete) return Promise.resolve();
    return new Promise((resolve) => this.settledListeners.push(resolve));
  }

  counts(): GroupDeliveryCounts {
    return {
      uploads: this.started,
      accepted: this.accepted.size,
      uploadErrors: { ...this.errors },
      expectedCopies: this.expected,
      deliveredCopies: this.firstDeliveries,
      lost: this.expected - this.matched,
      duplicated: this.repeats,
      unconfirmed: this.firstDeliveries - this.matched,
      unexpected: this.strays,
    };
  }

  private settle(): void {
    this.inFlight--;
    this.notifyIfComplete();
  }

  private notifyIfComplete(): void {
    if (this.complete) this.settledListeners.splice(0).forEach((resolve) => resolve());
  }
}
