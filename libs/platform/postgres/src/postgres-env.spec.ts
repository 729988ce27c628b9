import { EnvironmentError, parseEnvironment } from '@sotto/platform/config';
import { identityFiles } from '@sotto/testing';
import { postgresConnection, postgresEnv } from './index';

function problemsOf(env: Record<string, string>): Record<string, string> {
  try {
    parseEnvironment(postgresEnv, env);
  } catch (error) {
    if (error instanceof EnvironmentError) {
      return Object.fromEntries(error.problems.map((p) => [p.variable, p.message]));
    }
    throw error;
  }
  return {};
}

describe('postgresEnv', () => {
  const files = identityFiles('backup-store');
  const url = 'postgres://sotto:secret@db.internal:5432/sotto';
  const verified = `${url}?sslmode=verify-full`;

  it('reaches the database in plaintext without sslmode, and over TLS with sslmode=verify-full', () => {
    expect(postgresConnection(parseEnvironment(postgresEnv, { DATABASE_URL: url }))).toEqual({ url });
    expect(
      postgresConnection(
        parseEnvironment(postgresEnv, {
          DATABASE_URL: verified,
          DATABASE_TLS_CA: files.ca,
          DATABASE_TLS_CERT: files.cert,
          DATABASE_TLS_KEY: files.key,
        }),
      ),
    ).toEqual({ url: verified, tls: { ca: files.ca, cert: files.cert, key: files.key } });
    // libpq's own parameters do as well.
    expect(problemsOf({ DATABASE_URL: `${verified}&sslrootcert=${files.ca}` })).toEqual({});
  });

  it('refuses an sslmode that does not check the server, naming the one to use, without echoing the URL', () => {
    for (const mode of ['require', 'verify-ca', 'prefer', 'allow']) {
      expect(problemsOf({ DATABASE_URL: `${url}?sslmode=${mode}` })).toEqual({
        DATABASE_URL: `sslmode=${mode} does not check that the server's certificate names its host: use sslmode=verify-full`,
      });
    }
    expect(problemsOf({ DATABASE_URL: `${url}?sslmode=no-verify` })).toEqual({
      DATABASE_URL: 'expected sslmode=verify-full or sslmode=disable',
    });
    expect(problemsOf({ DATABASE_URL: `${url}?ssl=true` })).toEqual({
      DATABASE_URL: 'ask for TLS with sslmode=verify-full, not ssl=',
    });
  });

  it('refuses TLS files without verify-full, files named twice, and files it cannot read', () => {
    expect(problemsOf({ DATABASE_URL: url, DATABASE_TLS_CA: files.ca })).toEqual({
      DATABASE_TLS_CA: 'is read only over TLS: add sslmode=verify-full to DATABASE_URL',
    });
    expect(problemsOf({ DATABASE_URL: `${url}?sslrootcert=${files.ca}` })).toEqual({
      DATABASE_URL: 'sslrootcert is read only with sslmode=verify-full',
    });
    expect(
      problemsOf({ DATABASE_URL: `${verified}&sslrootcert=${files.ca}`, DATABASE_TLS_CA: files.ca }),
    ).toEqual({ DATABASE_TLS_CA: 'DATABASE_URL names sslrootcert already: set one of them' });
    expect(
      problemsOf({ DATABASE_URL: `${verified}&sslkey=/nowhere/client.key&sslcert=${files.cert}` }),
    ).toEqual({
      DATABASE_URL: 'sslkey is not the path of a readable PEM file',
    });
  });
});
