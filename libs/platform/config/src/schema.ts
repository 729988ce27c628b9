import { readFileSync } from 'node:fs';
import { z } from 'zod';

/** `host:port`, as every listen and dial address in Sotto is written. */
export type HostPort = `${string}:${number}`;

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

export function hostPort() {
  return z
    .string()
    .refine(
      (value) => {
        const match = HOST_PORT.exec(value);
        return match !== null && Number(match[2]) <= 65535;
      },
      { message: 'expected host:port, such as 127.0.0.1:7400' },
    )
    .transform((value) => value as HostPort);
}

export function url(protocols: readonly string[]) {
  return z.string().refine(
    (value) => {
      try {
        return protocols.includes(new URL(value).protocol.replace(/:$/, ''));
      } catch {
        return false;
      }
    },
    { message: `expected a URL starting with ${protocols.map((p) => `${p}://`).join(' or ')}` },
  );
}

export function positiveInt() {
  return z.coerce
    .number({ message: 'expected a whole number' })
    .int({ message: 'expected a whole number' })
    .positive({ message: 'expected a number greater than 0' });
}

/** A whole number, 0 included: for settings where 0 turns something off, such as a cache's time to live. */
export function nonNegativeInt() {
  return z.coerce
    .number({ message: 'expected a whole number' })
    .int({ message: 'expected a whole number' })
    .min(0, { message: 'expected 0 or more' });
}

/** A comma-separated list of host:port, as KAFKA_BROKERS is written. */
export function commaList() {
  return z
    .string()
    .transform((value) =>
      value
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item.length > 0),
    )
    .pipe(z.array(hostPort()).min(1, { message: 'expected at least one host:port' }));
}

export function logLevel() {
  return z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
    message: 'expected one of fatal, error, warn, info, debug, trace, silent',
  });
}

/** The path of a readable PEM file (a certificate, a CA bundle or a private key). */
export function pemFile() {
  return z.string().refine(
    (path) => {
      try {
        return readFileSync(path, 'utf8').includes('-----BEGIN ');
      } catch {
        return false;
      }
    },
    { message: 'expected the path of a readable PEM file' },
  );
}
