import { refuse } from '@sotto/platform/grpc';

/**
 * The most GUIDs one acknowledgement from a device may carry, and the most
 * a stream keeps waiting to be forwarded to the relay (which deletes at
 * most this many per call). A device has at most DELIVERY_MAX_IN_FLIGHT
 * (no more than 1000) envelopes of a stream to acknowledge at any time.
 */
export const MAX_ACK_GUIDS = 1000;

/** Reading a call's requests, which can wait in HTTP/2 flow control instead of in memory. */
export interface InboundFlow {
  pause(): unknown;
  resume(): unknown;
}

/**
 * A Connect stream's acknowledgements on their way to the relay: one relay
 * call at a time, carrying whatever GUIDs came meanwhile. Nothing is
 * forwarded before the stream is open; until then, and while half the
 * allowance waits, the device's further requests are left unread, in HTTP/2
 * flow control. More than MAX_ACK_GUIDS waiting (or in one acknowledgement)
 * ends the stream with RESOURCE_EXHAUSTED, so memory stays bounded whatever
 * the device sends.
 */
export class AckQueue {
  private pending: string[] = [];
  private forwarding = false;
  private open = false;
  private paused = false;
  private failed = false;

  constructor(
    private readonly forward: (guids: string[]) => Promise<void>,
    private readonly inbound: InboundFlow,
    private readonly fail: (error: unknown) => void,
  ) {
    this.updateFlow();
  }

  /** One acknowledgement from the device; false, and the stream failed, if it was too much. */
  add(guids: readonly string[]): boolean {
    if (this.failed) return false;
    if (guids.length > MAX_ACK_GUIDS) {
      return this.refuse(`ack.guids: at most ${MAX_ACK_GUIDS} per acknowledgement, not ${guids.length}`);
    }
    if (this.pending.length + guids.length > MAX_ACK_GUIDS) {
      return this.refuse(
        `ack: more than ${MAX_ACK_GUIDS} acknowledged GUIDs waiting to be forwarded; acknowledge only what this stream sent`,
      );
    }
    this.pending.push(...guids);
    this.next();
    return true;
  }

  /** The stream is open: acknowledgements go to the relay from now on. */
  start(): void {
    this.open = true;
    this.next();
  }

  /** GUIDs accepted and not yet handed to the relay. */
  get waiting(): number {
    return this.pending.length;
  }

  private next(): void {
    if (this.open && !this.forwarding && !this.failed && this.pending.length > 0) {
      const batch = this.pending.splice(0, MAX_ACK_GUIDS);
      this.forwarding = true;
      this.forward(batch).then(
        () => {
          this.forwarding = false;
          this.next();
        },
        (error: unknown) => {
          this.failed = true;
          this.fail(error);
        },
      );
    }
    this.updateFlow();
  }

  private refuse(message: string): false {
    this.failed = true;
    this.pending = [];
    this.fail(refuse('too-many', message));
    return false;
  }

  private updateFlow(): void {
    const pause = !this.open || this.pending.length >= MAX_ACK_GUIDS / 2;
    if (pause === this.paused) return;
    this.paused = pause;
    if (pause) this.inbound.pause();
    else this.inbound.resume();
  }
}
