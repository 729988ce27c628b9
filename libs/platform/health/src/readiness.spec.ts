import { Readiness } from './readiness';

describe('Readiness', () => {
  it('is ready when every check passes', async () => {
    const readiness = new Readiness();
    readiness.register('postgres', () => Promise.resolve());
    readiness.register('redis', () => Promise.resolve());
    await expect(readiness.report()).resolves.toEqual({
      ready: true,
      checks: { postgres: 'ok', redis: 'ok' },
    });
  });

  it('names the failing dependency and why', async () => {
    const readiness = new Readiness();
    readiness.register('postgres', () => Promise.resolve());
    readiness.register('kafka', () => Promise.reject(new Error('connection refused')));
    await expect(readiness.report()).resolves.toEqual({
      ready: false,
      checks: { postgres: 'ok', kafka: 'connection refused' },
    });
  });

  it('is not ready once shutting down', async () => {
    const readiness = new Readiness();
    readiness.markShuttingDown();
    expect((await readiness.report()).ready).toBe(false);
  });
});
