import { z } from 'zod';
import { pemFile } from './schema';

/** The names of one client's TLS variables: `<PREFIX>_TLS_CA`, `_CERT` and `_KEY`. */
export interface ClientTlsVariables {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

export function clientTlsVariables(prefix: string): ClientTlsVariables {
  return { ca: `${prefix}_TLS_CA`, cert: `${prefix}_TLS_CERT`, key: `${prefix}_TLS_KEY` };
}

/** The three variables, each the path of a readable PEM file when set. */
export function clientTlsShape<Prefix extends string>(prefix: Prefix) {
  const names = clientTlsVariables(prefix);
  return {
    [names.ca]: pemFile().optional(),
    [names.cert]: pemFile().optional(),
    [names.key]: pemFile().optional(),
  } as Record<`${Prefix}_TLS_${'CA' | 'CERT' | 'KEY'}`, z.ZodOptional<ReturnType<typeof pemFile>>>;
}

/**
 * The rules a client's TLS variables follow: they are read only over TLS (so
 * setting them without turning TLS on is a mistake, said rather than ignored),
 * and a certificate comes with its key. `turnOn` says how to turn TLS on, e.g.
 * "make REDIS_URL rediss://".
 */
export function checkClientTls(
  env: Readonly<Record<string, unknown>>,
  names: ClientTlsVariables,
  tls: { readonly on: boolean; readonly turnOn: string },
  context: z.RefinementCtx,
): void {
  const problem = (variable: string, message: string): void =>
    context.addIssue({ code: 'custom', path: [variable], message });
  if (!tls.on) {
    for (const name of [names.ca, names.cert, names.key]) {
      if (env[name] !== undefined) problem(name, `is read only over TLS: ${tls.turnOn}`);
    }
    return;
  }
  // Said of the variable that is set: parseEnvironment calls one that is not "required", no more.
  if (env[names.cert] !== undefined && env[names.key] === undefined) {
    problem(names.cert, `is set without ${names.key}: a client certificate needs its key`);
  }
  if (env[names.key] !== undefined && env[names.cert] === undefined) {
    problem(names.key, `is set without ${names.cert}: a key needs its certificate`);
  }
}
