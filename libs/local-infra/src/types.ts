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

export interface Infrastructure {
  kafka: RunningKafka;
  redis: RunningRedis;
  postgres: RunningPostgres;
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
