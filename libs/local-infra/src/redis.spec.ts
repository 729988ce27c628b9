import Redis from 'ioredis';
import { startRedis } from './redis';
import { isGone, tempDir } from './test-support';

describe('startRedis', () => {
  const tmp = tempDir('redis');
  afterAll(() => tmp.cleanup());

  it('keeps data across a restart (AOF) and stops cleanly', async () => {
    const first = await startRedis({ dataDir: tmp.dir });
    expect(first.url).toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/);
    const client = new Redis(first.url);
    await client.set('local-infra:key', 'value-1');
    await client.quit();
    await first.stop();
    await first.stop(); // idempotent
    expect(isGone(first.pid)).toBe(true);

    const second = await startRedis({ dataDir: tmp.dir });
    try {
      const again = new Redis(second.url);
      expect(await again.get('local-infra:key')).toBe('value-1');
      await again.quit();
    } finally {
      await second.stop();
    }
    expect(isGone(second.pid)).toBe(true);
  });
});
