import { spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  readSync,
  fstatSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import type { Logger } from './types';

export type ServerName = 'kafka' | 'redis' | 'postgres';

const STOP_TIMEOUT_MS = 30_000;
const TAIL_LINES = 40;

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

/** The last lines of the given log files, for error messages. */
export function logTail(files: string[], lines = TAIL_LINES): string {
  const parts: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      const fd = openSync(file, 'r');
      try {
        // Only the end matters and Kafka logs can be large: read at most the last 64 KiB.
        const size = fstatSync(fd).size;
        const length = Math.min(size, 64 * 1024);
        const buf = new Uint8Array(length);
        readSync(fd, buf, 0, length, size - length);
        text = Buffer.from(buf).toString('utf8');
      } finally {
        closeSync(fd);
      }
    } catch {
      continue;
    }
    const tail = text.trimEnd().split('\n').slice(-lines).join('\n');
    if (tail.length > 0) parts.push(`--- last lines of ${file} ---\n${tail}`);
  }
  return parts.length > 0 ? parts.join('\n') : `(no output in ${files.join(', ')})`;
}

function signal(pid: number, sig: NodeJS.Signals, group: boolean): void {
  try {
    process.kill(group ? -pid : pid, sig);
  } catch {
    // ESRCH: already gone (or the group has no members left); nothing to do.
  }
}

/** Alive and not a zombie (a zombie still answers kill(pid, 0) when nobody reaps it). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return true;
  }
}

/** Every child still running; used to signal them when the parent exits without stopping them. */
const live = new Set<ManagedProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Children are detached (own process group) so a terminal Ctrl-C does not hit them directly;
  // if the parent then exits without stop(), ask them to shut down instead of leaving orphans.
  process.on('exit', () => {
    for (const child of live) child.signalOnExit();
  });
}

export interface SpawnOptions {
  name: ServerName;
  command: string;
  args: string[];
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr are appended here. */
  outputFile: string;
  /** Files whose tails go into error messages. */
  logFiles: string[];
  /** Signal for a graceful shutdown, sent to the leader process. */
  stopSignal: NodeJS.Signals;
  /** Records the pid so a run whose parent died can be cleaned up by the next start. */
  pidFile: string;
  /** A string that appears in the command line of this server and no other (its data dir). */
  marker: string;
  logger: Logger;
}

/**
 * If a previous parent died without stopping its server, that server still holds the data dir
 * (Kafka's lock, postmaster.pid, Redis' AOF); stop it before starting a new one.
 */
async function reclaimStale(opts: SpawnOptions): Promise<void> {
  if (!existsSync(opts.pidFile)) return;
  const pid = Number.parseInt(readFileSync(opts.pidFile, 'utf8').trim(), 10);
  rmSync(opts.pidFile, { force: true });
  if (!Number.isInteger(pid) || pid <= 1 || !isAlive(pid)) return;
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return;
  }
  if (!cmdline.includes(opts.marker)) return; // pid reused by something unrelated
  opts.logger.warn(`${opts.name}: stopping leftover process ${pid} from a previous run`);
  signal(pid, opts.stopSignal, false);
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (isAlive(pid) && Date.now() < deadline) await sleep(100);
  if (isAlive(pid)) {
    signal(pid, 'SIGKILL', true);
    while (isAlive(pid)) await sleep(50);
  }
}

/** A server child process: spawned in its own process group, stopped gracefully, then forcibly. */
export class ManagedProcess {
  readonly name: ServerName;
  readonly pid: number;
  readonly stopSignal: NodeJS.Signals;
  private readonly child: ChildProcess;
  private readonly logFiles: string[];
  private readonly pidFile: string;
  private readonly logger: Logger;
  private readonly exited: Promise<void>;
  private exitStatus: string | undefined;
  private stopping: Promise<void> | undefined;

  private constructor(child: ChildProcess, pid: number, opts: SpawnOptions) {
    this.child = child;
    this.pid = pid;
    this.name = opts.name;
    this.stopSignal = opts.stopSignal;
    this.logFiles = opts.logFiles;
    this.pidFile = opts.pidFile;
    this.logger = opts.logger;
    this.exited = new Promise((resolve) => {
      const done = (code: number | null, sig: NodeJS.Signals | null): void => {
        this.exitStatus = sig !== null ? `signal ${sig}` : `code ${String(code)}`;
        live.delete(this);
        resolve();
      };
      if (child.exitCode !== null || child.signalCode !== null) done(child.exitCode, child.signalCode);
      else child.once('exit', done);
    });
  }

  static async spawn(opts: SpawnOptions): Promise<ManagedProcess> {
    await reclaimStale(opts);
    const out = openSync(opts.outputFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(opts.command, opts.args, {
        cwd: opts.cwd,
        env: opts.env ?? process.env,
        stdio: ['ignore', out, out],
        detached: true,
      });
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
    } catch (err) {
      throw new Error(`${opts.name}: could not run ${opts.command}: ${errorMessage(err)}`);
    } finally {
      closeSync(out); // the child has its own copy of the descriptor
    }
    const pid = child.pid;
    if (pid === undefined) throw new Error(`${opts.name}: ${opts.command} did not start`);
    writeFileSync(opts.pidFile, `${pid}\n`);
    const managed = new ManagedProcess(child, pid, opts);
    live.add(managed);
    installExitHook();
    return managed;
  }

  /**
   * Synchronous, for the parent's 'exit' hook: ask the server to shut down. The pid file stays so
   * the next start can still reclaim a server that is slow to go.
   */
  signalOnExit(): void {
    signal(this.pid, this.stopSignal, false);
  }

  get hasExited(): boolean {
    return this.exitStatus !== undefined;
  }

  tail(): string {
    return logTail(this.logFiles);
  }

  /**
   * Polls `probe` until it resolves. Fails at once if the child exits, or after `timeoutMs`
   * (stopping the child); both errors carry the tail of the server's log.
   */
  async waitReady(probe: () => Promise<void>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastError = 'not probed yet';
    for (;;) {
      if (this.hasExited) {
        throw new Error(
          `${this.name} exited (${String(this.exitStatus)}) before it was ready\n${this.tail()}`,
        );
      }
      try {
        await Promise.race([probe(), this.exited]);
        if (!this.hasExited) return;
        continue; // exited while probing; report it above
      } catch (err) {
        lastError = errorMessage(err);
      }
      if (Date.now() >= deadline) {
        await this.stop();
        throw new Error(
          `${this.name} was not ready after ${Math.round(timeoutMs / 1000)} s (last probe: ${lastError})\n${this.tail()}`,
        );
      }
      await Promise.race([sleep(250), this.exited]);
    }
  }

  /** A crash, for fault tests: SIGKILL to the whole process group, resolved once it has exited. */
  async kill(): Promise<void> {
    signal(this.pid, 'SIGKILL', true);
    await this.exited;
    await this.stop();
  }

  /** Idempotent: graceful signal, up to 30 s, then SIGKILL to the whole process group. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    if (!this.hasExited) {
      // The graceful signal goes to the leader only: PostgreSQL's postmaster coordinates its own
      // children, which must not receive the signal themselves.
      signal(this.pid, this.stopSignal, false);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        this.exited.then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        this.logger.warn(
          `${this.name}: no exit ${STOP_TIMEOUT_MS / 1000} s after ${this.stopSignal}; killing it`,
        );
        signal(this.pid, 'SIGKILL', true);
        await this.exited;
      }
    }
    // Anything the leader left behind in its group (it should be none) goes too.
    signal(this.pid, 'SIGKILL', true);
    rmSync(this.pidFile, { force: true });
    this.child.removeAllListeners();
  }
}
