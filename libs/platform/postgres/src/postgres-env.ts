import { z } from 'zod';
import { checkClientTls, clientTlsShape, clientTlsVariables, pemFile, url } from '@sotto/platform/config';
import type { ClientTlsFiles } from '@sotto/platform/tls';

const TLS = clientTlsVariables('DATABASE');

/** libpq's names, in DATABASE_URL, for the files DATABASE_TLS_CA, _CERT and _KEY name. */
const URL_FILES = { ca: 'sslrootcert', cert: 'sslcert', key: 'sslkey' } as const;

/** The sslmode values Sotto takes: plaintext, or TLS with the server's certificate and name verified. */
const SSL_MODES = ['disable', 'verify-full'];

/**
 * What DATABASE_URL asks for: TLS (sslmode=verify-full) or not, and the
 * files it names itself, libpq-style. Everything else in it is pg's.
 */
export interface PostgresUrlTls {
  readonly verifyFull: boolean;
  readonly mode: string | undefined;
  readonly files: ClientTlsFiles;
  /** Other TLS parameters Sotto does not take (libpq's `ssl=`). */
  readonly refused: readonly string[];
}

export function postgresUrlTls(databaseUrl: string): PostgresUrlTls {
  const params = new URL(databaseUrl).searchParams;
  const mode = params.get('sslmode') ?? undefined;
  const file = (name: string): string | undefined => params.get(name) ?? undefined;
  return {
    verifyFull: mode === 'verify-full',
    mode,
    files: { ca: file(URL_FILES.ca), cert: file(URL_FILES.cert), key: file(URL_FILES.key) },
    refused: params.has('ssl') ? ['ssl'] : [],
  };
}

/**
 * The environment of a PostgreSQL client, for every service that keeps data
 * there: DATABASE_URL, which asks for TLS with `sslmode=verify-full` (the
 * server's certificate must chain to the CA and name the host), and the CA and
 * client certificate as DATABASE_TLS_CA, _CERT and _KEY, or as libpq's
 * sslrootcert, sslcert and sslkey in the URL. Compose it into a service's
 * schema with `.and(postgresEnv)`.
 */
export const postgresEnv = z
  .object({
    /** postgres://user:password@host:5432/db, with ?sslmode=verify-full for TLS. */
    DATABASE_URL: url(['postgres', 'postgresql']),
    ...clientTlsShape('DATABASE'),
  })
  .superRefine((env, context) => {
    let tls: PostgresUrlTls;
    try {
      tls = postgresUrlTls(env.DATABASE_URL);
    } catch {
      return; // not a URL: DATABASE_URL's own check says so
    }
    const problem = (variable: string, message: string): void =>
      context.addIssue({ code: 'custom', path: [variable], message });
    if (tls.mode !== undefined && !SSL_MODES.includes(tls.mode)) {
      problem(
        'DATABASE_URL',
        tls.mode === 'require' || tls.mode === 'verify-ca' || tls.mode === 'prefer' || tls.mode === 'allow'
          ? `sslmode=${tls.mode} does not check that the server's certificate names its host: use sslmode=verify-full`
          : 'expected sslmode=verify-full or sslmode=disable',
      );
    }
    if (tls.refused.length > 0) problem('DATABASE_URL', 'ask for TLS with sslmode=verify-full, not ssl=');
    checkClientTls(
      env,
      TLS,
      { on: tls.verifyFull, turnOn: 'add sslmode=verify-full to DATABASE_URL' },
      context,
    );
    for (const [kind, parameter] of Object.entries(URL_FILES) as [keyof ClientTlsFiles, string][]) {
      const inUrl = tls.files[kind];
      if (inUrl === undefined) continue;
      if (!tls.verifyFull) problem('DATABASE_URL', `${parameter} is read only with sslmode=verify-full`);
      else if (env[TLS[kind] as keyof typeof env] !== undefined) {
        problem(TLS[kind], `DATABASE_URL names ${parameter} already: set one of them`);
      } else if (!pemFile().safeParse(inUrl).success) {
        problem('DATABASE_URL', `${parameter} is not the path of a readable PEM file`);
      }
    }
  });

export type PostgresEnv = z.output<typeof postgresEnv>;

/** How PostgresModule reaches the database the environment names. */
export function postgresConnection(env: PostgresEnv): { url: string; tls?: ClientTlsFiles } {
  if (!postgresUrlTls(env.DATABASE_URL).verifyFull) return { url: env.DATABASE_URL };
  return {
    url: env.DATABASE_URL,
    tls: { ca: env.DATABASE_TLS_CA, cert: env.DATABASE_TLS_CERT, key: env.DATABASE_TLS_KEY },
  };
}
