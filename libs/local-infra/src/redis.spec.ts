import { join } from 'node:path';
import Redis, { type RedisOptions } from 'ioredis';
import { clientTlsOptions, prepareLocalPki } from '@sotto/platform/tls';
import { startRedis } from './redis';
import { isGone, tempDir } from './test-support';

/** PING once, no retries: PONG, or the error that ended the attempt. */
async function pingOnce(url: string, options: RedisOptions = {}): Promise<string> {
  const client = new Redis(url, {
    ...options,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  let failure: Error | undefined;
  client.on('error', (error: Error) => (failure ??= error));
  try {
    await client.connect();
    return await client.ping();
  } catch (error) {
    return (failure ?? (error as Error)).message;
  } finally {
    client.disconnect();
  }
}

describe('startRedis', () => {
  const tmp = tempDir('redis');
  afterAll(() => tmp.cleanup());

  it('keeps data across a restart (AOF), with TLS on the second start, and stops cleanly', async () => {
    const first = await startRedis({ dataDir: tmp.dir });
    expect(first.url).toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/);
    expect(first.ca).toBeUndefined();
    const client = new Redis(first.url);
    await client.set('local-infra:key', 'value-1');
    await client.quit();
    await first.stop();
    await first.stop(); // idempotent
    expect(isGone(first.pid)).toBe(true);

    const pki = await prepareLocalPki({ dir: join(tmp.dir, 'pki'), servers: ['redis'], clients: ['client'] });
    const identity = (name: string) => ({ ca: pki.ca, ...pki.identities[name] });
    const second = await startRedis({ dataDir: tmp.dir, tls: { ca: pki.ca, identity: identity('redis') } });
    try {
      expect(second.url).toMatch(/^rediss:\/\/127\.0\.0\.1:\d+$/);
      expect(second.ca).toBe(pki.ca);
      const again = new Redis(second.url, { tls: clientTlsOptions(identity('client')) });
      expect(await again.get('local-infra:key')).toBe('value-1');
      await again.quit();
      // Mutual TLS only: no plaintext port, no client without a certificate of the CA.
      expect(await pingOnce(second.url.replace('rediss:', 'redis:'))).not.toBe('PONG');
      // TLS 1.3 lets the client finish its handshake before the server checks the certificate, so
      // the refusal arrives as the server's alert or, if the client wrote first, as a reset.
      expect(await pingOnce(second.url, { tls: clientTlsOptions({ ca: pki.ca }) })).toMatch(
        /certificate required|ECONNRESET/,
      );
    } finally {
      await second.stop();
    }
    expect(isGone(second.pid)).toBe(true);
  });
});
