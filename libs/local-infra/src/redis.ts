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

/** A reply as RESP2 gives it: simple and bulk strings, integers, nil, arrays of replies. */
export type RedisReply = string | number | null | RedisReply[];

/** One reply parsed from `buffer` at `at`, and where the next starts; undefined while incomplete. */
export function parseReply(buffer: Buffer, at = 0): { reply: RedisReply | Error; next: number } | undefined {
  const eol = buffer.indexOf('\r\n', at);
  if (eol < 0) return undefined;
  const head = buffer.toString('utf8', at, eol);
  const rest = head.slice(1);
  const next = eol + 2;
  switch (head[0]) {
    case '+':
      return { reply: rest, next };
    case '-':
      return { reply: new Error(rest), next };
    case ':':
      return { reply: Number.parseInt(rest, 10), next };
    case '$': {
      const length = Number.parseInt(rest, 10);
      if (length < 0) return { reply: null, next };
      if (buffer.length < next + length + 2) return undefined;
      return { reply: buffer.toString('utf8', next, next + length), next: next + length + 2 };
    }
    case '*': {
      const count = Number.parseInt(rest, 10);
      if (count < 0) return { reply: null, next };
      const items: RedisReply[] = [];
      let from = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buffer, from);
        if (item === undefined) return undefined;
        // An error inside an array (EXEC) is kept as its text: nothing here sends one.
        items.push(item.reply instanceof Error ? item.reply.message : item.reply);
        from = item.next;
      }
      return { reply: items, next: from };
    }
    default:
      return { reply: new Error(`not a RESP reply: ${head}`), next };
  }
}

/**
 * One command over a raw socket: no client library retries to get in the way of
 * the poll loops. Under TLS it verifies the server as any client would, and
 * presents the server's own certificate (it allows client authentication).
 * Answers the parsed reply; an error reply ("-LOADING ...", "-CLUSTERDOWN ...") rejects.
 */
export function redisCall(
  port: number,
  tls: ServerTls | undefined,
  words: string[],
  timeoutMs = 2_000,
): Promise<RedisReply> {
  return new Promise((resolveCall, reject) => {
    const socket =
      tls === undefined
        ? createConnection({ host: '127.0.0.1', port })
        : connectTls({
            host: '127.0.0.1',
            port,
            ...clientTlsOptions({ ca: tls.ca, cert: tls.identity.cert, key: tls.identity.key }),
          });
    const connected = tls === undefined ? 'connect' : 'secureConnect';
    let received = Buffer.alloc(0);
    const finish = (err?: Error, reply?: RedisReply): void => {
      socket.destroy();
      if (err) reject(err);
      else resolveCall(reply ?? null);
    };
    socket.setTimeout(timeoutMs, () => finish(new Error(`${words.join(' ')} timed out`)));
    socket.once('error', finish);
    socket.once(connected, () =>
      socket.write(
        `*${words.length}\r\n${words.map((w) => `$${Buffer.byteLength(w)}\r\n${w}\r\n`).join('')}`,
      ),
    );
    socket.on('data', (data: Uint8Array) => {
      received = Buffer.concat([received, data]);
      const parsed = parseReply(received);
      if (parsed === undefined) return;
      if (parsed.reply instanceof Error)
        finish(new Error(`${words.join(' ')} answered ${parsed.reply.message}`));
      else finish(undefined, parsed.reply);
    });
  });
}

/** One command whose reply is text (a simple or bulk string); any other reply rejects. */
export async function redisCommand(
  port: number,
  tls: ServerTls | undefined,
  words: string[],
): Promise<string> {
  const reply = await redisCall(port, tls, words);
  if (typeof reply !== 'string') throw new Error(`${words.join(' ')} answered ${JSON.stringify(reply)}`);
  return reply;
}

/** Ready: PING answers +PONG (while replaying the AOF Redis answers "-LOADING ..."). */
export async function ping(port: number, tls: ServerTls | undefined): Promise<void> {
  const reply = await redisCommand(port, tls, ['PING']);
  if (reply !== 'PONG') throw new Error(`PING answered ${reply}`);
}

/** Under TLS the plaintext port is closed (0) and every client must present a certificate of the CA. */
function listenArgs(port: number, tls: ServerTls | undefined): string[] {
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

/**
 * What every local redis-server is started with, alone or as a cluster node: loopback only, listening
 * as `listenArgs` says, persistence in the append-only file only (no RDB snapshots) kept in `dir`,
 * in the foreground so it can be supervised.
 */
export function redisServerArgs(port: number, tls: ServerTls | undefined, dir: string): string[] {
  return [
    '--bind',
    '127.0.0.1',
    ...listenArgs(port, tls),
    '--appendonly',
    'yes',
    '--dir',
    dir,
    '--save',
    '',
    '--daemonize',
    'no',
    '--protected-mode',
    'yes',
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
  const child = await ManagedProcess.spawn({
    name: 'redis',
    command: bin,
    args: redisServerArgs(port, tls, dataDir),
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
