import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { clientTlsOptions, prepareLocalPki } from '@sotto/platform/tls';
import { mastersServingSlots, startRedisCluster } from './redis-cluster';
import { isGone, tempDir } from './test-support';

describe('mastersServingSlots', () => {
  it('names the masters holding slots, leaving out failed ones and replicas', () => {
    const table = [
      'a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460',
      'b2 127.0.0.1:7002@17002 master - 0 1 2 connected 5461-10922',
      'c3 127.0.0.1:7003@17003 master,fail - 0 1 3 disconnected',
      'd4 127.0.0.1:7004@17004 slave b2 0 1 2 connected',
      'e5 127.0.0.1:7006@17006,node-6 master - 0 1 7 connected 10923-16383',
      'f6 127.0.0.1:7005@17005 master - 0 1 0 connected',
    ].join('\n');
    expect(mastersServingSlots(`${table}\n`)).toEqual(['127.0.0.1:7001', '127.0.0.1:7002', '127.0.0.1:7006']);
  });
});

describe('startRedisCluster', () => {
  const tmp = tempDir('redis-cluster');
  afterAll(() => tmp.cleanup());

  it('serves 3 masters and 3 replicas over mutual TLS, spreads keys over their slots, and stops cleanly', async () => {
    const pki = await prepareLocalPki({ dir: join(tmp.dir, 'pki'), servers: ['redis'], clients: ['client'] });
    const redis = pki.identities['redis'];
    const client = pki.identities['client'];
    if (redis === undefined || client === undefined) throw new Error('the local CA issued no certificates');
    const cluster = await startRedisCluster({
      dataDir: join(tmp.dir, 'cluster'),
      tls: { ca: pki.ca, identity: redis },
    });
    const tls = clientTlsOptions({ ca: pki.ca, ...client });
    const [first, ...others] = cluster.nodes;
    const port = (address: string): number => Number(address.split(':')[1]);
    const connection = new Cluster([{ host: '127.0.0.1', port: port(first) }], {
      redisOptions: { tls },
      // Nodes announce 127.0.0.1, which the certificate names; no rewriting needed.
      dnsLookup: (address, callback) => callback(null, address),
    });
    try {
      expect(cluster.nodes).toHaveLength(6);
      expect(cluster.ca).toBe(pki.ca);
      // Many keys land on every master; each comes back from the node that owns its slot.
      const keys = Array.from({ length: 60 }, (_, i) => `local-infra:key:${i}`);
      await Promise.all(keys.map((key, i) => connection.set(key, `value-${i}`)));
      expect(await Promise.all(keys.map((key) => connection.get(key)))).toEqual(
        keys.map((_, i) => `value-${i}`),
      );
      const masters = connection.nodes('master');
      expect(masters).toHaveLength(3);
      const held = await Promise.all(masters.map((master) => master.dbsize()));
      expect(held.every((count) => count > 0)).toBe(true);
      expect(held.reduce((a, b) => a + b, 0)).toBe(60);
      // Each master has one replica.
      const table = (await masters[0].cluster('NODES')) as string;
      const replicasOf = table
        .trim()
        .split('\n')
        .map((line) => line.split(' '))
        .filter((columns) => columns[2].includes('slave'))
        .map((columns) => columns[3]);
      expect(replicasOf).toHaveLength(3);
      expect(new Set(replicasOf).size).toBe(3);
      // A multi-key command across slots is refused; with a hash tag it is one slot and is served.
      await expect(connection.mset('local-infra:a', '1', 'local-infra:b', '2')).rejects.toThrow(/CROSSSLOT/);
      await connection.mset('local-infra:{t}:a', '1', 'local-infra:{t}:b', '2');
      expect(await connection.mget('local-infra:{t}:a', 'local-infra:{t}:b')).toEqual(['1', '2']);
      // Mutual TLS only: a node takes no client without a certificate of the CA.
      const stranger = new Redis(port(others[0]), '127.0.0.1', {
        tls: clientTlsOptions({ ca: pki.ca }),
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      stranger.on('error', () => undefined);
      await expect(stranger.connect().then(() => stranger.ping())).rejects.toThrow();
      stranger.disconnect();
    } finally {
      connection.disconnect();
      await cluster.stop();
    }
    await cluster.stop(); // idempotent
    expect(cluster.pids.every(isGone)).toBe(true);

    // Started again in the same directory, it rejoins the cluster it formed, with its data (AOF).
    const again = await startRedisCluster({
      dataDir: join(tmp.dir, 'cluster'),
      tls: { ca: pki.ca, identity: redis },
    });
    const reconnected = new Cluster([{ host: '127.0.0.1', port: port(again.nodes[0] ?? '') }], {
      redisOptions: { tls },
      dnsLookup: (address, callback) => callback(null, address),
    });
    try {
      expect(again.nodes).toEqual(cluster.nodes);
      expect(await reconnected.get('local-infra:key:7')).toBe('value-7');
    } finally {
      reconnected.disconnect();
      await again.stop();
    }
  });
});
