import { mkdirSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join, resolve } from 'node:path';
import { connect as connectTls } from 'node:tls';
import { clientTlsOptions } from '@sotto/platform/tls';
import { ManagedProcess } from './process';
import { freePort } from './ports';
import { which } from './system';
import { silentLogger, type RunningRedis, type ServerTls, type StartOptions } from './types';

const READY_TIMEOUT_MS = 30_000;

/**
 * One command over a raw socket: no client library retries to get in the way of
 * the poll loops. Under TLS it verifies the server as any client would, and
 * presents the server's own certificate (it allows client authentication).
 * Answers the reply's text: a simple string, or a bulk string; an error reply
 * ("-LOADING ...", "-CLUSTERDOWN ...") rejects.
 */
export function redisCommand(port: number, tls: ServerTls | undefined, words: string[]): Promise<string> {
  return new Promise((resolveCommand, reject) => {
    const socket =
      tls === undefined
        ? createConnection({ host: '127.0.0.1', port })
        : connectTls({
            host: '127.0.0.1',
            port,
            ...clientTlsOptions({ ca: tls.ca, cert: tls.identity.cert, key: tls.identity.key }),
          });
    const connected = tls === undefined ? 'connect' : 'secureConnect';
    let reply = Buffer.alloc(0);
    const finish = (err?: Error, text?: string): void => {
      socket.destroy();
      if (err) reject(err);
      else resolveCommand(text ?? '');
    };
    socket.setTimeout(2000, () => finish(new Error(`${words.join(' ')} timed out`)));
    socket.once('error', finish);
    socket.once(connected, () =>
      socket.write(
        `*${words.length}\r\n${words.map((w) => `$${Buffer.byteLength(w)}\r\n${w}\r\n`).join('')}`,
      ),
    );
    socket.on('data', (data: Uint8Array) => {
      reply = Buffer.concat([reply, data]);
      const text = reply.toString('utf8');
      const eol = text.indexOf('\r\n');
      if (eol < 0) return;
      const head = text.slice(0, eol);
      if (head.startsWith('+')) finish(undefined, head.slice(1));
      else if (head.startsWith('$')) {
        const length = Number.parseInt(head.slice(1), 10);
        const body = reply.subarray(Buffer.byteLength(head) + 2);
        if (body.length < length + 2) return;
        finish(undefined, body.subarray(0, length).toString('utf8'));
      } else finish(new Error(`${words.join(' ')} answered ${text.trim()}`));
    });
  });
}

/** Ready: PING answers +PONG (while replaying the AOF Redis answers "-LOADING ..."). */
export async function ping(port: number, tls: ServerTls | undefined): Promise<void> {
  const reply = await redisCommand(port, tls, ['PING']);
  if (reply !== 'PONG') throw new Error(`PING answered ${reply}`);
}

/** Under TLS the plaintext port is closed (0) and every client must present a certificate of the CA. */
export function redisListenArgs(port: number, tls: ServerTls | undefined): string[] {
  return tls === undefined
    ? ['--port', String(port)]
    : [
        '--port',
        '0',
        '--tls-port',
        String(port),
        '--tls-cert-file',
        tls.identity.cert,
        '--tls-key-file',
        tls.identity.key,
        '--tls-ca-cert-file',
        tls.ca,
        '--tls-auth-clients',
        'yes',
        '--tls-protocols',
        'TLSv1.3',
      ];
}

export function redisServerBinary(): string {
  const bin = which('redis-server');
  if (bin === undefined) {
    throw new Error('redis-server not found on PATH; install the Debian package redis-server');
  }
  return bin;
}

export async function startRedis(opts: StartOptions): Promise<RunningRedis> {
  const logger = opts.logger ?? silentLogger;
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const bin = redisServerBinary();
  const port = opts.port ?? (await freePort());
  const logFile = join(dataDir, 'redis.log');
  const started = Date.now();
  const { tls } = opts;
  const listen = redisListenArgs(port, tls);
  const child = await ManagedProcess.spawn({
    name: 'redis',
    command: bin,
    // Persistence is the append-only file only (no RDB snapshots), kept in dataDir.
    args: [
      '--bind',
      '127.0.0.1',
      ...listen,
      '--appendonly',
      'yes',
      '--dir',
      dataDir,
      '--save',
      '',
      '--daemonize',
      'no',
      '--protected-mode',
      'yes',
    ],
    cwd: dataDir,
    outputFile: logFile,
    logFiles: [logFile],
    stopSignal: 'SIGTERM',
    pidFile: join(dataDir, 'redis.pid'),
    // Redis rewrites its command line to "redis-server 127.0.0.1:PORT", so the data dir is not in it.
    marker: 'redis-server',
    logger,
  });
  try {
    await child.waitReady(() => ping(port, tls), READY_TIMEOUT_MS);
  } catch (err) {
    await child.stop();
    throw err;
  }
  logger.info(
    `redis ready on 127.0.0.1:${port}${tls ? ' (TLS)' : ''} in ${Date.now() - started} ms (pid ${child.pid})`,
  );
  return {
    name: 'redis',
    pid: child.pid,
    url: `${tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    ...(tls ? { ca: tls.ca } : {}),
    stop: () => child.stop(),
  };
}
