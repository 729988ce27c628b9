export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
}

export interface RunningServer {
  readonly name: 'kafka' | 'redis' | 'postgres';
  readonly pid: number;
  stop(): Promise<void>;
}

export interface RunningKafka extends RunningServer {
  /** ['127.0.0.1:PORT'] */
  readonly brokers: string[];
}

export interface RunningRedis extends RunningServer {
  /** redis://127.0.0.1:PORT */
  readonly url: string;
}

export interface RunningPostgres extends RunningServer {
  /** postgres://sotto@127.0.0.1:PORT/sotto */
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
  kafka: RunningKafka;
  redis: RunningRedis;
  postgres: RunningPostgres;
  /** Not a process: a token directory the vault's PKCS#11 library reads. */
  hsm: SoftHsmToken;
  pids: number[];
  stop(): Promise<void>;
}

export interface StartOptions {
  dataDir: string;
  port?: number;
  logger?: Logger;
}

export const silentLogger: Logger = {
  info: () => undefined,
  warn: () => undefined,
};
