import type { InboundFlow } from './ack-queue';

/**
 * One call's reading, shared by what may each need it paused (a Connect
 * stream's acknowledgements and its sends): the call is paused while any
 * holder pauses it and reads again only once none does, so one holder's
 * resume never undoes another's pause.
 */
export class InboundHolds {
  private pausedBy = 0;

  constructor(private readonly inbound: InboundFlow) {}

  /** A holder's own switch; pausing twice, or resuming what it did not pause, changes nothing. */
  holder(): InboundFlow {
    let paused = false;
    return {
      pause: () => {
        if (paused) return;
        paused = true;
        if (this.pausedBy++ === 0) this.inbound.pause();
      },
      resume: () => {
        if (!paused) return;
        paused = false;
        if (--this.pausedBy === 0) this.inbound.resume();
      },
    };
  }
}
