import { Inject, Injectable, Logger } from '@nestjs/common';
import { RELAY_ENV, type RelayEnv } from '../env';

export type FaultPoint = NonNullable<RelayEnv['SOTTO_FAULT_INJECTION']>;

/**
 * For the crash tests only (SOTTO_FAULT_INJECTION): makes the relay die like
 * a power cut at a chosen point of routing, for the first batch that holds
 * an envelope this process accepted itself, so older records in the log do
 * not trigger it. Off, it does nothing and remembers nothing.
 */
@Injectable()
export class FaultInjection {
  private readonly logger = new Logger(FaultInjection.name);
  private readonly acceptedHere = new Set<string>();

  constructor(@Inject(RELAY_ENV) private readonly env: RelayEnv) {}

  accepted(guids: readonly string[]): void {
    if (this.env.SOTTO_FAULT_INJECTION) guids.forEach((guid) => this.acceptedHere.add(guid));
  }

  /** Never returns when the fault fires: the process is killed a moment later, and nothing more is done. */
  async at(point: FaultPoint, guids: readonly string[]): Promise<void> {
    if (this.env.SOTTO_FAULT_INJECTION !== point || !guids.some((guid) => this.acceptedHere.has(guid)))
      return;
    this.logger.warn(`fault injection: SIGKILL at ${point}`);
    // A moment's grace lets the Send that produced these envelopes answer its client first.
    setTimeout(() => process.kill(process.pid, 'SIGKILL'), 200);
    await new Promise<never>(() => undefined);
  }
}
