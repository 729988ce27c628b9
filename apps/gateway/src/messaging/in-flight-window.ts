export interface InFlightLimits {
  /** Envelopes read from the mailbox and not yet acknowledged by the device. */
  readonly envelopes: number;
  /** Bytes of their content; one envelope is let through even when it alone is larger. */
  readonly bytes: number;
}

/**
 * The envelopes a stream has read from its device's mailbox and the device
 * has not acknowledged: what the gateway holds for it, whether still to be
 * written or written and unanswered. The stream reads more only while there
 * is room, so a device that reads nothing, or never acknowledges, costs the
 * gateway at most `limits.envelopes` envelopes and about `limits.bytes`.
 */
export class InFlightWindow {
  // Made when the first envelope comes: most of a gateway's streams are idle, holding nothing.
  private held?: Map<string, number>;
  private heldBytes = 0;
  private waiting?: (() => void)[];

  constructor(private readonly limits: InFlightLimits) {}

  get envelopes(): number {
    return this.held?.size ?? 0;
  }

  get bytes(): number {
    return this.heldBytes;
  }

  /** How many more envelopes, and bytes, may be read now; zero envelopes when full. */
  room(): { envelopes: number; bytes: number } {
    if (this.isFull) return { envelopes: 0, bytes: 0 };
    return {
      envelopes: this.limits.envelopes - this.envelopes,
      bytes: this.limits.bytes - this.heldBytes,
    };
  }

  get isFull(): boolean {
    return this.envelopes >= this.limits.envelopes || this.heldBytes >= this.limits.bytes;
  }

  /** Counts an envelope read from the mailbox. A GUID already held is counted once. */
  add(guid: string, bytes: number): void {
    this.held ??= new Map();
    if (this.held.has(guid)) return;
    this.held.set(guid, bytes);
    this.heldBytes += bytes;
  }

  /** The device acknowledged these; GUIDs this window does not hold change nothing. Returns how many it held. */
  release(guids: readonly string[]): number {
    let released = 0;
    if (this.held === undefined) return released;
    for (const guid of guids) {
      const bytes = this.held.get(guid);
      if (bytes === undefined) continue;
      this.held.delete(guid);
      this.heldBytes -= bytes;
      released += 1;
    }
    if (released > 0 && !this.isFull) this.wake();
    return released;
  }

  /** Resolves once there is room (at once if there is), or when the window is cleared. */
  whenRoom(): Promise<void> {
    if (!this.isFull) return Promise.resolve();
    return new Promise((resolve) => (this.waiting ??= []).push(resolve));
  }

  /** Forgets everything held (the stream ended) and lets every waiter go. */
  clear(): void {
    this.held = undefined;
    this.heldBytes = 0;
    this.wake();
  }

  private wake(): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.forEach((resolve) => resolve());
  }
}
