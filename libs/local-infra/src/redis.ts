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
 * One PING over a raw socket: no client library retries to get in the way of
 * the poll loop. Under TLS it verifies the server as any client would, and
 * presents the server's own certificate (it allows client authentication).
 */
function ping(port: number, tls: ServerTls | undefined): Promise<void> {
  return new Promise((resolvePing, reject) => {
    const socket =
      tls === undefined
        ? createConnection({ host: '127.0.0.1', port })
        : connectTls({
            host: '127.0.0.1',
            port,
            ...clientTlsOptions({ ca: tls.ca, cert: tls.identity.cert, key: tls.identity.key }),
          });
    const connected = tls === undefined ? 'connect' : 'secureConnect';
    let reply = '';
    const finish = (err?: Error): void => {
      socket.destroy();
      if (err) reject(err);
      else resolvePing();
    };
    socket.setTimeout(2000, () => finish(new Error('PING timed out')));
    socket.once('error', finish);
    socket.once(connected, () => socket.write('*1\r\n$4\r\nPING\r\n'));
    socket.on('data', (data: Uint8Array) => {
      reply += Buffer.from(data).toString('utf8');
      if (!reply.includes('\r\n')) return;
      // While replaying the AOF Redis answers "-LOADING ..."; only +PONG means ready.
      if (reply.startsWith('+PONG')) finish();
      else finish(new Error(`PING answered ${reply.trim()}`));
    });
  });
}

export async function startRedis(opts: StartOptions): Promise<RunningRedis> {
  const logger = opts.logger ?? silentLogger;
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const bin = which('redis-server');
  if (bin === undefined) {
    throw new Error('redis-server not found on PATH; install the Debian package redis-server');
  }
  const port = opts.port ?? (await freePort());
  const logFile = join(dataDir, 'redis.log');
  const started = Date.now();
  const { tls } = opts;
  // Under TLS the plaintext port is closed (0) and every client must present a certificate of the CA.
  const listen =
    tls === undefined
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
