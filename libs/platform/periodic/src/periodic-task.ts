import { Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';

/**
 * Work a service does now and then on every replica, such as sweeping what
 * expired. Extend it and provide the subclass: it runs once when the
 * application has started, then every `intervalMs`.
 *
 * Runs never overlap: a tick that finds the last run still going is skipped.
 * A run that throws is logged, and the next tick tries again. The timer does
 * not keep the process alive, and shutdown waits for a run under way, so no
 * run outlives the pools it uses (Nest closes them after this hook).
 */
export abstract class PeriodicTask implements OnApplicationBootstrap, BeforeApplicationShutdown {
  protected readonly logger: Logger;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  protected constructor(
    name: string,
    private readonly intervalMs: number,
  ) {
    this.logger = new Logger(name);
  }

  /** One run. Whatever it throws is logged for it. */
  protected abstract run(): Promise<void>;

  onApplicationBootstrap(): void {
    this.start();
  }

  beforeApplicationShutdown(): Promise<void> {
    return this.stop();
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.runNow(), this.intervalMs).unref();
    void this.runNow();
  }

  /** No more ticks; resolves once a run under way has ended. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Runs now unless a run is under way; resolves when that run has ended. Never rejects. */
  runNow(): Promise<void> {
    this.running ??= this.runLogged().finally(() => (this.running = undefined));
    return this.running;
  }

  private async runLogged(): Promise<void> {
    try {
      await this.run();
    } catch (error) {
      const { message, stack } = error instanceof Error ? error : new Error(String(error));
      this.logger.error(`run failed, next in ${this.intervalMs} ms: ${message}`, stack);
    }
  }
}
