import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { ManagedProcess, errorMessage, sleep } from './process';
import { freePort, isPortFree } from './ports';
import { redisCall, redisCommand, redisServerArgs, redisServerBinary, ping } from './redis';
import { which } from './system';
import { silentLogger, type RunningRedisCluster, type ServerTls, type StartOptions } from './types';

const run = promisify(execFile);

const MASTERS = 3;
const NODES = MASTERS * 2;
const READY_TIMEOUT_MS = 60_000;
/**
 * How long a master may be silent before the others count it failed and its replica takes over.
 * Short, so a local fault test sees a promotion within seconds; Redis' default is 15 s.
 */
export const CLUSTER_NODE_TIMEOUT_MS = 2_000;

/** Where the ports of a cluster are kept, so a restart finds its nodes where nodes.conf says they are. */
interface ClusterLayout {
  readonly ports: number[];
  readonly busPorts: number[];
}

function readLayout(file: string): ClusterLayout | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const layout = JSON.parse(readFileSync(file, 'utf8')) as ClusterLayout;
    if (layout.ports.length === NODES && layout.busPorts.length === NODES) return layout;
  } catch {
    // unreadable: start afresh
  }
  return undefined;
}

/** redis-cli's TLS options: verify the nodes by the CA and present the server's certificate. */
function cliTlsArgs(tls: ServerTls | undefined): string[] {
  return tls === undefined
    ? []
    : ['--tls', '--cacert', tls.ca, '--cert', tls.identity.cert, '--key', tls.identity.key];
}

function field(info: string, name: string): string | undefined {
  const line = info.split('\r\n').find((each) => each.startsWith(`${name}:`));
  return line?.slice(name.length + 1).trim();
}

/**
 * Healthy: every node that is running says cluster_state:ok, and every replica's link to its master is up
 * (so the replica holds what its master held when the probe ran).
 */
async function probeHealthy(ports: number[], tls: ServerTls | undefined): Promise<void> {
  for (const port of ports) {
    const info = await redisCommand(port, tls, ['CLUSTER', 'INFO']);
    const state = field(info, 'cluster_state');
    if (state !== 'ok') throw new Error(`127.0.0.1:${port} says cluster_state:${String(state)}`);
    const served = field(info, 'cluster_slots_ok');
    if (served !== '16384') throw new Error(`127.0.0.1:${port} says ${String(served)} slots are served`);
    const replication = await redisCommand(port, tls, ['INFO', 'replication']);
    if (field(replication, 'role') === 'slave' && field(replication, 'master_link_status') !== 'up') {
      throw new Error(`127.0.0.1:${port} is a replica whose master link is not up`);
    }
  }
}

/**
 * A Redis Cluster of 3 masters and 3 replicas on loopback, each node a `redis-server` with its own
 * data directory (dataDir/node-N, append-only file) and free ports for clients and for the cluster
 * bus. With `tls`, every node serves TLS 1.3 only, replicates and talks on the bus over mutual TLS,
 * and takes only clients presenting a certificate of the CA. Created with
 * `redis-cli --cluster create ... --cluster-replicas 1` the first time; a later start in the same
 * dataDir takes the same ports and rejoins the cluster it formed. Resolves once every node says
 * cluster_state:ok and every replica is in sync.
 */
export async function startRedisCluster(opts: Omit<StartOptions, 'port'>): Promise<RunningRedisCluster> {
  const logger = opts.logger ?? silentLogger;
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const bin = redisServerBinary();
  const cli = which('redis-cli');
  if (cli === undefined)
    throw new Error('redis-cli not found on PATH; install the Debian package redis-tools');
  const { tls } = opts;
  const layoutFile = join(dataDir, 'cluster.json');
  const nodeDir = (i: number): string => join(dataDir, `node-${i}`);
  const previous = readLayout(layoutFile);
  const rejoin =
    previous !== undefined &&
    Array.from({ length: NODES }, (_, i) => existsSync(join(nodeDir(i), 'nodes.conf'))).every(Boolean);
  let layout: ClusterLayout;
  if (rejoin) {
    layout = previous;
    for (const port of [...layout.ports, ...layout.busPorts]) {
      if (!(await isPortFree(port))) {
        throw new Error(
          `redis cluster: port ${port} of the cluster in ${dataDir} is taken; free it or remove that directory`,
        );
      }
    }
  } else {
    for (let i = 0; i < NODES; i++) rmSync(nodeDir(i), { recursive: true, force: true });
    const ports: number[] = [];
    for (let i = 0; i < NODES * 2; i++) {
      let port = await freePort();
      while (ports.includes(port)) port = await freePort();
      ports.push(port);
    }
    layout = { ports: ports.slice(0, NODES), busPorts: ports.slice(NODES) };
    writeFileSync(layoutFile, `${JSON.stringify(layout)}\n`);
  }

  const spawnNode = (i: number): Promise<ManagedProcess> => {
    const dir = nodeDir(i);
    mkdirSync(dir, { recursive: true });
    const logFile = join(dir, 'redis.log');
    return ManagedProcess.spawn({
      name: 'redis',
      command: bin,
      args: [
        ...redisServerArgs(layout.ports[i], tls, dir),
        ...(tls === undefined ? [] : ['--tls-cluster', 'yes', '--tls-replication', 'yes']),
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        'nodes.conf',
        '--cluster-port',
        String(layout.busPorts[i]),
        '--cluster-node-timeout',
        String(CLUSTER_NODE_TIMEOUT_MS),
      ],
      cwd: dir,
      outputFile: logFile,
      logFiles: [logFile],
      stopSignal: 'SIGTERM',
      pidFile: join(dir, 'redis.pid'),
      // Redis rewrites its command line to "redis-server 127.0.0.1:PORT [cluster]".
      marker: 'redis-server',
      logger,
    });
  };
  const started = Date.now();
  const nodes: ManagedProcess[] = [];
  const stopAll = (): Promise<void> => Promise.all(nodes.map((node) => node.stop())).then(() => undefined);
  try {
    for (let i = 0; i < NODES; i++) nodes.push(await spawnNode(i));
    await Promise.all(
      nodes.map((node, i) => node.waitReady(() => ping(layout.ports[i], tls), READY_TIMEOUT_MS)),
    );
    if (!rejoin) {
      try {
        await run(
          cli,
          [
            ...cliTlsArgs(tls),
            '--cluster',
            'create',
            ...layout.ports.map((port) => `127.0.0.1:${port}`),
            '--cluster-replicas',
            '1',
            '--cluster-yes',
          ],
          { timeout: READY_TIMEOUT_MS },
        );
      } catch (err) {
        const output = err as { stdout?: string; stderr?: string };
        throw new Error(
          `redis cluster: redis-cli --cluster create failed: ${errorMessage(err)}\n${output.stdout ?? ''}${output.stderr ?? ''}`,
        );
      }
    }
    await waitHealthy(layout.ports, tls, READY_TIMEOUT_MS);
  } catch (err) {
    await stopAll();
    throw err;
  }
  logger.info(
    `redis cluster ready on ${layout.ports.map((port) => `127.0.0.1:${port}`).join(',')}${tls ? ' (TLS)' : ''} in ${Date.now() - started} ms`,
  );
  const addresses = layout.ports.map((port) => `127.0.0.1:${port}`);
  const indexOf = (address: string): number => {
    const index = addresses.indexOf(address);
    if (index < 0) throw new Error(`redis cluster: no node ${address}`);
    return index;
  };
  let stopping: Promise<void> | undefined;
  return {
    name: 'redis-cluster',
    nodes: addresses,
    get pids() {
      return nodes.map((node) => node.pid);
    },
    ...(tls ? { ca: tls.ca } : {}),
    kill: async (address) => {
      await nodes[indexOf(address)].kill();
    },
    restart: async (address) => {
      const index = indexOf(address);
      if (!nodes[index].hasExited) throw new Error(`redis cluster: node ${address} is running`);
      // Its nodes.conf and append-only file are where it left them: it rejoins as what the cluster
      // now takes it for (a replica, if its replica was promoted meanwhile).
      const node = await spawnNode(index);
      nodes[index] = node;
      await node.waitReady(() => ping(layout.ports[index], tls), READY_TIMEOUT_MS);
    },
    masters: async () => {
      const running = layout.ports.filter((_, i) => !nodes[i].hasExited);
      const table = await redisCommand(running[0] ?? 0, tls, ['CLUSTER', 'NODES']);
      return mastersServingSlots(table);
    },
    moveSlot: (slot, to) =>
      moveSlot(
        layout.ports.filter((_, i) => !nodes[i].hasExited),
        tls,
        slot,
        to,
      ),
    waitHealthy: (timeoutMs = READY_TIMEOUT_MS) =>
      waitHealthy(
        layout.ports.filter((_, i) => !nodes[i].hasExited),
        tls,
        timeoutMs,
      ),
    stop: () => {
      stopping ??= stopAll();
      return stopping;
    },
  };
}

async function waitHealthy(ports: number[], tls: ServerTls | undefined, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await probeHealthy(ports, tls);
      return;
    } catch (err) {
      if (Date.now() >= deadline) {
        throw new Error(
          `redis cluster was not healthy after ${Math.round(timeoutMs / 1000)} s (last probe: ${errorMessage(err)})`,
        );
      }
    }
    await sleep(200);
  }
}

/**
 * The masters that serve slots, as host:port, from a CLUSTER NODES table (lines of
 * "id ip:port@bus flags master-id ping pong epoch link slot..."); a master flagged fail is left out.
 */
export function mastersServingSlots(table: string): string[] {
  return table
    .trim()
    .split('\n')
    .map((line) => line.trim().split(' '))
    .filter((columns) => {
      const flags = (columns[2] ?? '').split(',');
      return flags.includes('master') && !flags.includes('fail') && columns.length > 8;
    })
    .map((columns) => (columns[1] ?? '').split('@')[0] ?? '')
    .sort();
}

/** A node as a CLUSTER NODES line describes it. */
export interface ClusterNode {
  readonly id: string;
  /** host:port */
  readonly address: string;
  readonly master: boolean;
  /** The slots it serves (a migration in progress, "[slot->-id]", is not counted). */
  readonly slots: readonly number[];
}

/** The nodes of a CLUSTER NODES table ("id ip:port@bus flags master-id ping pong epoch link slot..."). */
export function clusterNodes(table: string): ClusterNode[] {
  return table
    .trim()
    .split('\n')
    .map((line) => line.trim().split(' '))
    .filter((columns) => columns.length >= 8)
    .map((columns) => {
      const flags = (columns[2] ?? '').split(',');
      const slots = columns.slice(8).flatMap((range) => {
        if (range.startsWith('[')) return [];
        const [first, last = first] = range.split('-').map(Number);
        if (first === undefined || last === undefined) return [];
        return Array.from({ length: last - first + 1 }, (_, i) => first + i);
      });
      return {
        id: columns[0] ?? '',
        address: (columns[1] ?? '').split('@')[0] ?? '',
        master: flags.includes('master') && !flags.includes('fail'),
        slots,
      };
    });
}

/** Keys moved per MIGRATE, as redis-cli --cluster reshard does (its --cluster-pipeline default is 10). */
const MIGRATE_BATCH = 100;
const MIGRATE_TIMEOUT_MS = 5_000;

const portOf = (address: string): number => Number(address.slice(address.lastIndexOf(':') + 1));

/**
 * Moves one slot, with its keys, from the master serving it to another master (`to`, host:port; by
 * default the next master in address order), the way a live resharding does while clients keep using
 * the slot: the target is told it is IMPORTING, the source that it is MIGRATING (from then on a
 * command for a key already moved is answered ASK by the source), the keys go over with MIGRATE in
 * batches until the source has none left, then every master is told the target owns the slot (the
 * target first, so that it never refuses its own slot), and the call resolves once every running
 * node's table says so. Answers where the slot was and how many keys moved.
 */
export async function moveSlot(
  ports: number[],
  tls: ServerTls | undefined,
  slot: number,
  to?: string,
): Promise<{ from: string; to: string; keys: number }> {
  const [any] = ports;
  if (any === undefined) throw new Error('redis cluster: no node is running');
  const table = clusterNodes(await redisCommand(any, tls, ['CLUSTER', 'NODES']));
  const masters = table.filter((node) => node.master).sort((a, b) => a.address.localeCompare(b.address));
  const source = masters.find((node) => node.slots.includes(slot));
  if (source === undefined) throw new Error(`redis cluster: no master serves slot ${slot}`);
  const target =
    to === undefined
      ? masters[(masters.indexOf(source) + 1) % masters.length]
      : masters.find((node) => node.address === to);
  if (target === undefined) throw new Error(`redis cluster: ${String(to)} is no master of the cluster`);
  if (target === source) return { from: source.address, to: target.address, keys: 0 };

  const at = (node: ClusterNode, words: string[], timeoutMs?: number): Promise<unknown> =>
    redisCall(portOf(node.address), tls, words, timeoutMs);
  const name = String(slot);
  await at(target, ['CLUSTER', 'SETSLOT', name, 'IMPORTING', source.id]);
  await at(source, ['CLUSTER', 'SETSLOT', name, 'MIGRATING', target.id]);
  let moved = 0;
  for (;;) {
    const keys = await at(source, ['CLUSTER', 'GETKEYSINSLOT', name, String(MIGRATE_BATCH)]);
    if (!Array.isArray(keys) || keys.length === 0) break;
    const [host = '127.0.0.1'] = target.address.split(':');
    await at(
      source,
      [
        'MIGRATE',
        host,
        String(portOf(target.address)),
        '',
        '0',
        String(MIGRATE_TIMEOUT_MS),
        'KEYS',
        ...keys.map(String),
      ],
      MIGRATE_TIMEOUT_MS * 2,
    );
    moved += keys.length;
  }
  for (const node of [target, source, ...masters.filter((each) => each !== source && each !== target)]) {
    await at(node, ['CLUSTER', 'SETSLOT', name, 'NODE', target.id]);
  }
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (const port of ports) {
    for (;;) {
      const owner = clusterNodes(await redisCommand(port, tls, ['CLUSTER', 'NODES'])).find((node) =>
        node.slots.includes(slot),
      );
      if (owner?.id === target.id) break;
      if (Date.now() >= deadline) {
        throw new Error(`redis cluster: 127.0.0.1:${port} does not see slot ${slot} on ${target.address}`);
      }
      await sleep(50);
    }
  }
  return { from: source.address, to: target.address, keys: moved };
}
