import { Cluster, type Redis as Server } from 'ioredis';
import type { Redis } from './redis.module';
import { keySlot } from './slots';

/**
 * How durable a write must be before a caller builds on it (say, commits a Kafka offset):
 * - `none`: the master has it in memory (and in its append-only file within a second, with
 *   Redis' default appendfsync everysec); a master that dies before replicating loses it.
 * - `replica`: WAIT: `replicas` replicas of every master written to have it in memory, so a
 *   failover to one of them keeps it.
 * - `replica-aof`: WAITAOF 1 `replicas`: the master and `replicas` replicas have fsynced it to their
 *   append-only files. Redis before 7.2 has no WAITAOF; there it is WAIT `replicas`, and the
 *   master's own disk is covered only when it runs with `appendfsync always`.
 */
export const WRITE_DURABILITY_LEVELS = ['none', 'replica', 'replica-aof'] as const;
export type WriteDurabilityLevel = (typeof WRITE_DURABILITY_LEVELS)[number];

export interface WriteDurabilityPolicy {
  readonly level: WriteDurabilityLevel;
  /** Replicas of each master that must hold the write. */
  readonly replicas: number;
  /** How long to wait for them, per call (ms). */
  readonly timeoutMs: number;
}

/** A master that did not make the writes durable in time. */
export interface DurabilityShortfall {
  /** host:port, or 'redis' for a single server. */
  readonly node: string;
  /** Replicas that acknowledged (for WAITAOF: that fsynced), and whether the master fsynced (WAITAOF only). */
  readonly replicas: number;
  readonly local?: boolean;
  /** Why, when the node could not be asked at all (its slot moved, its connection dropped). */
  readonly error?: string;
}

export interface DurabilityOutcome {
  readonly durable: boolean;
  /** The command each master was asked with (WAIT or WAITAOF), by node. */
  readonly commands: Readonly<Record<string, 'WAIT' | 'WAITAOF'>>;
  readonly shortfalls: readonly DurabilityShortfall[];
}

const DURABLE: DurabilityOutcome = { durable: true, commands: {}, shortfalls: [] };

/** Whether a Redis of this version (INFO server's redis_version) has WAITAOF: 7.2 and later. */
export function hasWaitAof(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map((part) => Number.parseInt(part, 10));
  return major > 7 || (major === 7 && minor >= 2);
}

function field(info: string, name: string): string | undefined {
  const line = info.split(/\r?\n/).find((each) => each.startsWith(`${name}:`));
  return line?.slice(name.length + 1).trim();
}

/**
 * Waits until writes made on a connection are durable by a policy, asking each master those writes
 * went to (WAIT and WAITAOF count the writes of the connection they are sent on, so the writes
 * must have gone over this same client). On a cluster the masters are found from the keys written,
 * by slot. Whether a master has WAITAOF is asked once per master (INFO server).
 */
export class WriteDurability {
  private readonly waitAof = new Map<string, Promise<boolean>>();

  constructor(
    private readonly redis: Redis,
    readonly policy: WriteDurabilityPolicy,
    /** Told once per master that lacks WAITAOF under `replica-aof`: its version. */
    private readonly onNoWaitAof: (node: string, version: string) => void = () => undefined,
  ) {}

  /** Waits for the writes of these keys, made on this client, to be durable by the policy. */
  async confirm(keys: readonly string[]): Promise<DurabilityOutcome> {
    if (this.policy.level === 'none' || keys.length === 0) return DURABLE;
    const masters = this.mastersOf(keys);
    const outcomes = await Promise.all(
      [...masters].map(([node, connection]) => this.confirmOn(node, connection)),
    );
    const commands: Record<string, 'WAIT' | 'WAITAOF'> = {};
    const shortfalls: DurabilityShortfall[] = [];
    for (const outcome of outcomes) {
      if (outcome.command) commands[outcome.node] = outcome.command;
      if (outcome.shortfall) shortfalls.push(outcome.shortfall);
    }
    return { durable: shortfalls.length === 0, commands, shortfalls };
  }

  /** The masters holding these keys' slots now, each with the client's connection to it. */
  private mastersOf(keys: readonly string[]): Map<string, Server | undefined> {
    const redis = this.redis;
    if (!(redis instanceof Cluster)) return new Map([['redis', redis]]);
    const connections = new Map(
      redis.nodes('master').map((node) => [`${node.options.host ?? ''}:${node.options.port ?? ''}`, node]),
    );
    const masters = new Map<string, Server | undefined>();
    for (const key of keys) {
      const node = redis.slots[keySlot(key)]?.[0] ?? `slot ${keySlot(key)}`;
      if (!masters.has(node)) masters.set(node, connections.get(node));
    }
    return masters;
  }

  private async confirmOn(
    node: string,
    connection: Server | undefined,
  ): Promise<{ node: string; command?: 'WAIT' | 'WAITAOF'; shortfall?: DurabilityShortfall }> {
    const { replicas, timeoutMs } = this.policy;
    if (connection === undefined) {
      return { node, shortfall: { node, replicas: 0, error: 'no connection to the master of the slot' } };
    }
    try {
      if (this.policy.level === 'replica-aof' && (await this.hasWaitAof(node, connection))) {
        const [local, acknowledged] = (await connection.call('WAITAOF', 1, replicas, timeoutMs)) as [
          number,
          number,
        ];
        const durable = local >= 1 && acknowledged >= replicas;
        return {
          node,
          command: 'WAITAOF',
          ...(durable ? {} : { shortfall: { node, replicas: acknowledged, local: local >= 1 } }),
        };
      }
      const acknowledged = (await connection.call('WAIT', replicas, timeoutMs)) as number;
      return {
        node,
        command: 'WAIT',
        ...(acknowledged >= replicas ? {} : { shortfall: { node, replicas: acknowledged } }),
      };
    } catch (error) {
      return { node, shortfall: { node, replicas: 0, error: (error as Error).message } };
    }
  }

  private hasWaitAof(node: string, connection: Server): Promise<boolean> {
    let known = this.waitAof.get(node);
    if (known === undefined) {
      known = connection.info('server').then((info) => {
        const version = field(info, 'redis_version') ?? '0';
        const has = hasWaitAof(version);
        if (!has) this.onNoWaitAof(node, version);
        return has;
      });
      // Asked again next time if the question itself failed.
      known.catch(() => this.waitAof.delete(node));
      this.waitAof.set(node, known);
    }
    return known;
  }
}
