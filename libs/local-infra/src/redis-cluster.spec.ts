import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { clientTlsOptions, prepareLocalPki } from '@sotto/platform/tls';
import { clusterNodes, mastersServingSlots, startRedisCluster } from './redis-cluster';
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

describe('clusterNodes', () => {
  it('reads ids, addresses, roles and slots, leaving out slots in migration', () => {
    const table = [
      'a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-2 5 [6->-b2]',
      'b2 127.0.0.1:7002@17002 master - 0 1 2 connected 7 [6-<-a1]',
      'c3 127.0.0.1:7003@17003 master,fail - 0 1 3 disconnected',
      'd4 127.0.0.1:7004@17004 slave b2 0 1 2 connected',
    ].join('\n');
    expect(clusterNodes(table)).toEqual([
      { id: 'a1', address: '127.0.0.1:7001', master: true, slots: [0, 1, 2, 5] },
      { id: 'b2', address: '127.0.0.1:7002', master: true, slots: [7] },
      { id: 'c3', address: '127.0.0.1:7003', master: false, slots: [] },
      { id: 'd4', address: '127.0.0.1:7004', master: false, slots: [] },
    ]);
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

  it('moves a slot and its keys to another master while a client keeps writing to it', async () => {
    const pki = await prepareLocalPki({
      dir: join(tmp.dir, 'pki-move'),
      servers: ['redis'],
      clients: ['client'],
    });
    const redis = pki.identities['redis'];
    const client = pki.identities['client'];
    if (redis === undefined || client === undefined) throw new Error('the local CA issued no certificates');
    const cluster = await startRedisCluster({
      dataDir: join(tmp.dir, 'cluster-move'),
      tls: { ca: pki.ca, identity: redis },
    });
    const tls = clientTlsOptions({ ca: pki.ca, ...client });
    const port = (address: string): number => Number(address.split(':')[1]);
    const connection = new Cluster([{ host: '127.0.0.1', port: port(cluster.nodes[0] ?? '') }], {
      redisOptions: { tls },
      dnsLookup: (address, callback) => callback(null, address),
    });
    const direct = (address: string): Redis =>
      new Redis(port(address), '127.0.0.1', { tls, maxRetriesPerRequest: 0, retryStrategy: () => null });
    try {
      // 250 keys in one slot (more than one MIGRATE batch), and a key elsewhere that must stay put.
      const keys = Array.from({ length: 250 }, (_, i) => `local-infra:{moving}:${i}`);
      await Promise.all(keys.map((key, i) => connection.set(key, `value-${i}`)));
      await connection.set('local-infra:{staying}', 'here');
      const slot = await connection.cluster('KEYSLOT', 'local-infra:{moving}');
      const mastersBefore = await cluster.masters();

      // A client keeps writing into the slot while it moves (it follows ASK and MOVED).
      let writing = true;
      let written = 0;
      const writer = (async () => {
        while (writing) {
          await connection.set(`local-infra:{moving}:during:${written}`, String(written));
          written += 1;
        }
      })();
      const move = await cluster.moveSlot(slot);
      writing = false;
      await writer;

      expect(move.keys).toBeGreaterThanOrEqual(250);
      expect(move.to).not.toBe(move.from);
      expect(mastersBefore).toContain(move.to);
      expect(await cluster.masters()).toEqual(mastersBefore);
      // Everything is read back from the new owner itself, not through a redirection.
      const owner = direct(move.to);
      const old = direct(move.from);
      try {
        expect(await owner.mget(...keys)).toEqual(keys.map((_, i) => `value-${i}`));
        const during = Array.from({ length: written }, (_, i) => `local-infra:{moving}:during:${i}`);
        expect(await owner.mget(...during)).toEqual(during.map((_, i) => String(i)));
        expect(await owner.cluster('COUNTKEYSINSLOT', slot)).toBe(250 + written);
        expect(await old.cluster('COUNTKEYSINSLOT', slot)).toBe(0);
        await expect(old.get(keys[0] ?? '')).rejects.toThrow(new RegExp(`^MOVED ${slot} ${move.to}$`));
      } finally {
        owner.disconnect();
        old.disconnect();
      }
      expect(await connection.get('local-infra:{staying}')).toBe('here');
      // Moving it back works the same, and to a named master.
      expect(await cluster.moveSlot(slot, move.from)).toEqual({
        from: move.to,
        to: move.from,
        keys: 250 + written,
      });
      expect(await connection.get(keys[7] ?? '')).toBe('value-7');
      await cluster.waitHealthy();
    } finally {
      connection.disconnect();
      await cluster.stop();
    }
  });
});
