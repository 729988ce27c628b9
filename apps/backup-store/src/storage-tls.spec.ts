import { foreignPki, startTestService, testInfra } from '@sotto/testing';

// The backup-store reaches the harness's PostgreSQL over mutual TLS in every suite (main.spec.ts
// and local.spec.ts serve through it). Here, what it does when it cannot trust it, or would not
// use TLS: it does not start, and says why.
describe('backup-store and PostgreSQL’s certificate', () => {
  it('will not start when PostgreSQL’s certificate is not from DATABASE_TLS_CA, saying so', async () => {
    const { ca } = await foreignPki();
    await expect(startTestService('backup-store', { DATABASE_TLS_CA: ca })).rejects.toThrow(
      /self-signed certificate in certificate chain|unable to verify the first certificate/,
    );
  });

  it('will not start in plaintext: the server takes TLS only', async () => {
    const plaintext = new URL(testInfra().databaseUrl);
    plaintext.searchParams.set('sslmode', 'disable');
    await expect(
      startTestService('backup-store', {
        DATABASE_URL: plaintext.toString(),
        DATABASE_TLS_CA: undefined,
        DATABASE_TLS_CERT: undefined,
        DATABASE_TLS_KEY: undefined,
      }),
    ).rejects.toThrow(/no pg_hba\.conf entry for host .+127\.0\.0\.1.+, no encryption/);
  });
});
