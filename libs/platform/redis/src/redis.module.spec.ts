import { Test } from '@nestjs/testing';
import type { Redis } from 'ioredis';
import { Readiness, ReadinessModule } from '@sotto/platform/health';
import {
  foreignPki,
  identityFiles,
  startTcpProxy,
  startTlsImpostor,
  testInfra,
  testTls,
} from '@sotto/testing';
import { REDIS, RedisModule, type RedisConnection } from './index';

/** The platform's Redis client, as a service starts it. */
async function start(connection: RedisConnection) {
  const moduleRef = await Test.createTestingModule({
    imports: [ReadinessModule, RedisModule.forRoot(connection)],
  }).compile();
  moduleRef.enableShutdownHooks();
  return moduleRef;
}

/** The harness's Redis at another address, keeping the scheme. */
function at(address: string): string {
  const url = new URL(testInfra().redisUrl);
  url.host = address;
  return url.toString();
}

describe('RedisModule', () => {
  // What a service presents: its own certificate, and the run's CA for the server's.
  const relay = identityFiles('message-relay');

  it('connects over TLS, verifying the server, registers a readiness check, and closes on shutdown', async () => {
    expect(testInfra().redisUrl).toMatch(/^rediss:\/\//);
    const moduleRef = await start({ url: testInfra().redisUrl, tls: relay });
    const redis = moduleRef.get<Redis>(REDIS);
    expect(await redis.ping()).toBe('PONG');
    // Subscribers are made with duplicate(): over TLS as well.
    const subscriber = redis.duplicate();
    expect(await subscriber.ping()).toBe('PONG');
    subscriber.disconnect();
    expect(await moduleRef.get(Readiness).report()).toEqual({ ready: true, checks: { redis: 'ok' } });
    const ended = new Promise<void>((resolve) => redis.once('end', () => resolve()));
    await moduleRef.close();
    await ended;
    expect(redis.status).toBe('end');
  });

  it('fails to start when Redis cannot be reached', async () => {
    await expect(start({ url: 'redis://127.0.0.1:1' })).rejects.toThrow(
      'cannot connect to Redis at 127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1',
    );
  });

  describe('TLS, attacked', () => {
    it('refuses a server whose certificate is not from its CA, and tells it nothing', async () => {
      const impostor = await startTlsImpostor(identityFiles('redis', await foreignPki()));
      try {
        await expect(start({ url: `rediss://${impostor.address}`, tls: relay })).rejects.toThrow(
          /^cannot connect to Redis at 127\.0\.0\.1:\d+: (self-signed certificate in certificate chain|unable to verify the first certificate)/,
        );
        expect([impostor.handshakes, impostor.bytesReceived]).toEqual([0, 0]);
      } finally {
        await impostor.close();
      }
    });

    it('refuses the real server reached by an address its certificate does not name', async () => {
      const { hostname, port } = new URL(testInfra().redisUrl);
      const proxy = await startTcpProxy(`${hostname}:${port}`, { listen: '127.0.0.2' });
      try {
        await expect(start({ url: at(proxy.address), tls: relay })).rejects.toThrow(
          "Hostname/IP does not match certificate's altnames: IP: 127.0.0.2 is not in the cert's list",
        );
      } finally {
        await proxy.close();
      }
    });

    it('trusts the system roots, not the CA of the server, unless told to', async () => {
      await expect(start({ url: testInfra().redisUrl })).rejects.toThrow(
        'self-signed certificate in certificate chain',
      );
    });

    it('is refused by the server without a client certificate', async () => {
      // Under TLS 1.3 the client has finished its side when the server refuses: the refusal may
      // reach it as the server's alert, or as the connection reset under its first command.
      await expect(start({ url: testInfra().redisUrl, tls: { ca: testTls().ca } })).rejects.toThrow(
        /certificate required|ECONNRESET/,
      );
    });

    it('will not send to a redis:// URL what was meant for TLS', async () => {
      await expect(
        start({ url: at(new URL(testInfra().redisUrl).host).replace('rediss:', 'redis:'), tls: relay }),
      ).rejects.toThrow('TLS settings for a redis:// URL: use rediss:// to reach Redis over TLS');
    });
  });
});
