import type { LoggerService } from '@nestjs/common';
import pino, { type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/** One JSON line per event on stdout, tagged with the service name. */
export function createLogger(service: string, level: LevelWithSilent = 'info'): Logger {
  return pino({
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}

/** Routes NestJS's own log lines through the service's pino logger. */
export class NestPinoLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}

  log(message: unknown, ...context: unknown[]): void {
    this.logger.info(this.fields(context), this.text(message));
  }

  error(message: unknown, ...context: unknown[]): void {
    this.logger.error(this.fields(context), this.text(message));
  }

  warn(message: unknown, ...context: unknown[]): void {
    this.logger.warn(this.fields(context), this.text(message));
  }

  debug(message: unknown, ...context: unknown[]): void {
    this.logger.debug(this.fields(context), this.text(message));
  }

  verbose(message: unknown, ...context: unknown[]): void {
    this.logger.trace(this.fields(context), this.text(message));
  }

  fatal(message: unknown, ...context: unknown[]): void {
    this.logger.fatal(this.fields(context), this.text(message));
  }

  private text(message: unknown): string {
    if (message instanceof Error) return message.message;
    return typeof message === 'string' ? message : JSON.stringify(message);
  }

  // Nest passes an optional stack trace and then the context (class name) last.
  private fields(context: unknown[]): Record<string, unknown> {
    const strings = context.filter((item): item is string => typeof item === 'string');
    if (strings.length === 0) return {};
    const fields: Record<string, unknown> = { context: strings[strings.length - 1] };
    if (strings.length > 1) fields['stack'] = strings[0];
    return fields;
  }
}
