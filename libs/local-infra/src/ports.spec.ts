import { createServer } from 'node:net';
import { ephemeralPortRange, FETCH_BLOCKED_PORTS, freePort, listeningPortRanges } from './ports';

describe('freePort', () => {
  it('returns a port that can be bound on 127.0.0.1', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    expect(port).toBeLessThan(65536);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port, exclusive: true }, resolve);
    });
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('stays out of the range outgoing connections take their local ports from, and never repeats itself', async () => {
    const [low, high] = ephemeralPortRange();
    const ports = new Set<number>();
    for (let i = 0; i < 200; i++) ports.add(await freePort());
    expect(ports.size).toBe(200);
    const outside = listeningPortRanges().length > 0;
    const inEphemeralRange = [...ports].filter((port) => port >= low && port <= high);
    expect(inEphemeralRange.length === 0 || !outside).toBe(true);
  });

  it('reads the kernel range, and falls back to the default on anything else', () => {
    expect(ephemeralPortRange(() => '32768\t60999\n')).toEqual([32768, 60999]);
    expect(ephemeralPortRange(() => '1024 65000')).toEqual([1024, 65000]);
    expect(ephemeralPortRange(() => 'nonsense')).toEqual([32768, 60999]);
    expect(ephemeralPortRange(() => '5000 4000')).toEqual([32768, 60999]);
    expect(
      ephemeralPortRange(() => {
        throw new Error('no /proc');
      }),
    ).toEqual([32768, 60999]);
  });

  it('leaves the kernel to pick when the ephemeral range covers nearly everything', () => {
    expect(listeningPortRanges([32768, 60999])).toEqual([
      [10000, 32767],
      [61000, 65535],
    ]);
    expect(listeningPortRanges([1024, 65000])).toEqual([]);
    expect(listeningPortRanges([10000, 64000])).toEqual([]);
    expect(listeningPortRanges([40000, 65535])).toEqual([[10000, 39999]]);
  });

  it('skips the ports fetch() refuses, where a server would have no readable /metrics', async () => {
    for (const port of FETCH_BLOCKED_PORTS) {
      await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toMatchObject({
        cause: { message: 'bad port' },
      });
    }
  });
});
