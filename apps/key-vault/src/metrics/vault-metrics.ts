import { Injectable } from '@nestjs/common';
import { Counter, Histogram, Registry } from 'prom-client';

export type OpaqueStep = 'registration' | 'start_login' | 'finish_login';
export type LoginOutcome = 'success' | 'wrong_password';

/**
 * What capacity planning needs from the vault: server CPU time per OPAQUE
 * step (a login is start_login + finish_login), and how logins end.
 */
@Injectable()
export class VaultMetrics {
  private readonly cpu: Histogram<'step'>;
  private readonly logins: Counter<'outcome'>;
  private readonly destroyed: Counter;
  private readonly waits: Counter;
  private readonly resets: Counter;

  /** The service's registry, which runService serves on /metrics. */
  constructor(registry: Registry) {
    this.cpu = new Histogram({
      name: 'sotto_vault_opaque_cpu_seconds',
      help: 'Server CPU time (user + system) of one OPAQUE step.',
      labelNames: ['step'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05],
      registers: [registry],
    });
    this.logins = new Counter({
      name: 'sotto_vault_logins_total',
      help: 'Finished vault logins, by outcome.',
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.destroyed = new Counter({
      name: 'sotto_vault_destroyed_total',
      help: 'Vaults destroyed after 10 failed attempts.',
      registers: [registry],
    });
    this.waits = new Counter({
      name: 'sotto_vault_login_waits_total',
      help: 'Vault logins refused because the try had to wait after the one before (spaced tries).',
      registers: [registry],
    });
    this.resets = new Counter({
      name: 'sotto_vault_attempt_resets_total',
      help: "Counts of failed tries cleared by the account's own device.",
      registers: [registry],
    });
  }

  /** Runs a synchronous OPAQUE step and records the CPU time it took. */
  timeCpu<T>(step: OpaqueStep, work: () => T): T {
    const before = process.cpuUsage();
    try {
      return work();
    } finally {
      const used = process.cpuUsage(before);
      this.cpu.observe({ step }, (used.user + used.system) / 1e6);
    }
  }

  login(outcome: LoginOutcome): void {
    this.logins.inc({ outcome });
  }

  vaultsDestroyed(count: number): void {
    this.destroyed.inc(count);
  }

  loginRefusedForWait(): void {
    this.waits.inc();
  }

  attemptsReset(): void {
    this.resets.inc();
  }
}
