import type { TlsIdentityFiles } from '@sotto/platform/tls';

export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
}

export interface RunningServer {
  readonly name: 'kafka' | 'redis' | 'postgres';
  readonly pid: number;
  /**
   * Set when it serves TLS only (TLS 1.3), with a certificate from this CA,
   * and takes only clients that present a certificate from it too.
   */
  readonly ca?: string;
  stop(): Promise<void>;
}

export interface RunningKafka extends RunningServer {
  /** ['127.0.0.1:PORT'], an SSL listener when `ca` is set */
  readonly brokers: string[];
}

/** One node of a local KRaft cluster: a broker and a controller voter in one process. */
export interface KafkaClusterNode {
  /** Its node.id, from 1. */
  readonly id: number;
  /** Its broker listener, 127.0.0.1:PORT; the same after a restart. */
  readonly broker: string;
  /** The running process (a new one after start()). */
  readonly pid: number;
  /** SIGKILL, like a power cut; resolves once it has exited. */
  kill(): Promise<void>;
  /** Starts it again, on the same ports and data, once it has exited; resolves when its broker answers. */
  start(): Promise<void>;
}

export interface RunningKafkaCluster extends RunningKafka {
  /** Every node, in node.id order; `brokers` lists their listeners in the same order. */
  readonly nodes: readonly KafkaClusterNode[];
}

export interface RunningRedis extends RunningServer {
  /** redis://127.0.0.1:PORT, or rediss://127.0.0.1:PORT with TLS */
  readonly url: string;
}

/** A local Redis Cluster: 3 masters, 3 replicas (see startRedisCluster). */
export interface RunningRedisCluster {
  readonly name: 'redis-cluster';
  /** Every node as host:port, masters and replicas alike: REDIS_CLUSTER_NODES. */
  readonly nodes: readonly string[];
  readonly pids: readonly number[];
  /** Set when the nodes serve mutual TLS only, with certificates of this CA. */
  readonly ca?: string;
  /** A crash, for fault tests: SIGKILL the node at this address and wait until it has exited. */
  kill(node: string): Promise<void>;
  /** The nodes that are masters serving slots now, as the running nodes see it (host:port). */
  masters(): Promise<string[]>;
  /** Starts a killed node again on its ports and data; resolves once it answers PING (it may still be syncing). */
  restart(node: string): Promise<void>;
  /**
   * Reshards one slot live: moves it and its keys from its master to another master (`to`, host:port;
   * by default the next master), resolving once every running node sees the new owner.
   */
  moveSlot(slot: number, to?: string): Promise<{ from: string; to: string; keys: number }>;
  /** Resolves once every node still running says cluster_state:ok and every replica is in sync. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface RunningPostgres extends RunningServer {
  /** postgres://sotto@127.0.0.1:PORT/sotto, with ?sslmode=verify-full under TLS */
  readonly url: string;
}

/** A SoftHSM2 token, as the key-vault's PKCS#11 settings name it. */
export interface SoftHsmToken {
  /** PKCS11_MODULE: SoftHSM2's PKCS#11 library. */
  readonly modulePath: string;
  /** SOFTHSM2_CONF: where this token lives. */
  readonly softHsmConf: string;
  /** PKCS11_TOKEN_LABEL */
  readonly tokenLabel: string;
  /** PKCS11_PIN: the token's user PIN, local only. */
  readonly pin: string;
}

export interface Infrastructure {
  kafka: RunningKafka | RunningKafkaCluster;
  redis: RunningRedis;
  postgres: RunningPostgres;
  /** Not a process: a token directory the vault's PKCS#11 library reads. */
  hsm: SoftHsmToken;
  pids: number[];
  stop(): Promise<void>;
}

/** What a local server needs to serve mutual TLS. */
export interface ServerTls {
  /** The CA its certificate chains to, and every client's must. */
  readonly ca: string;
  /**
   * Its certificate and private key. The certificate must name 127.0.0.1 and
   * allow client authentication too: the server's readiness probe presents it.
   */
  readonly identity: TlsIdentityFiles;
}

export interface StartOptions {
  dataDir: string;
  port?: number;
  logger?: Logger;
  /** Serve TLS only, with this certificate, and require client certificates from its CA. */
  tls?: ServerTls;
}

export const silentLogger: Logger = {
  info: () => undefined,
  warn: () => undefined,
};
