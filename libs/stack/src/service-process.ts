import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '@sotto/local-infra';
import { mutualTlsCredentials, waitForServing, type TlsFiles } from '@sotto/contracts';
import type { ServiceName } from './services';

export interface ServiceProcessOptions {
  readonly name: ServiceName;
  /** Added to the parent's environment. */
  readonly env: Readonly<Record<string, string>>;
  /** The service's stdout and stderr (JSON logs) go here. */
  readonly logFile: string;
  /** The certificate its health is checked with: the operator's. */
  readonly operator: TlsFiles;
  readonly readyTimeoutMs?: number;
}

export interface ServiceProcess {
  readonly name: ServiceName;
  readonly pid: number;
  readonly grpc: string;
  readonly metrics: string;
  readonly logFile: string;
  /** Settles with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<number | string>;
  /** SIGTERM (or the given signal), then SIGKILL if it is still running after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | string>;
}

function logTail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * V8 flags every service runs with, locally as in the image (deploy/Dockerfile's NODE_OPTIONS):
 * a young generation of up to 64 MiB per semi-space, since the message path allocates per message
 * and with Node's default (16 MiB) the services spent about twice the CPU in scavenges under load.
 */
const SERVICE_V8_FLAGS = ['--max-semi-space-size=64'] as const;

/**
 * With SOTTO_CPU_PROF_DIR set (the load generators' --cpu-prof), each service
 * writes a V8 CPU profile there when it stops, named after the service, for
 * Chrome DevTools or speedscope. With SOTTO_HEAP_SNAPSHOT_DIR set (the
 * connections load generator's --heap-snapshot), a service writes a V8 heap
 * snapshot there each time it gets SIGUSR2.
 */
function profiling(name: ServiceName): string[] {
  const cpuDir = process.env['SOTTO_CPU_PROF_DIR'];
  const heapDir = process.env['SOTTO_HEAP_SNAPSHOT_DIR'];
  return [
    ...(cpuDir === undefined || cpuDir === ''
      ? []
      : ['--cpu-prof', `--cpu-prof-dir=${cpuDir}`, `--cpu-prof-name=${name}.${Date.now()}.cpuprofile`]),
    ...(heapDir === undefined || heapDir === ''
      ? []
      : ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${heapDir}`]),
  ];
}

/**
 * Runs one service from its TypeScript sources, exactly as `npm start` does,
 * and resolves once it answers its gRPC health check with SERVING.
 */
export async function startServiceProcess(options: ServiceProcessOptions): Promise<ServiceProcess> {
  const root = repoRoot();
  const log = openSync(options.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(
      process.execPath,
      [
        ...SERVICE_V8_FLAGS,
        ...profiling(options.name),
        '-r',
        '@swc-node/register',
        join('apps', options.name, 'src', 'main.ts'),
      ],
      {
        cwd: root,
        env: {
          ...process.env,
          SWC_NODE_PROJECT: join(root, 'tsconfig.json'),
          SOTTO_PARENT_PID: String(process.pid),
          ...options.env,
        },
        stdio: ['ignore', log, log],
        // Its own process group: a terminal's Ctrl-C reaches the supervisor, which stops services in order.
        detached: true,
      },
    );
  } finally {
    closeSync(log);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${options.name}`);
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  const grpc = options.env['GRPC_ADDR'];
  const metrics = options.env['METRICS_ADDR'];
  if (grpc === undefined || metrics === undefined) throw new Error('GRPC_ADDR and METRICS_ADDR must be set');

  const stop = async (signal: NodeJS.Signals = 'SIGTERM', graceMs = 20_000): Promise<number | string> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    }
    return exited;
  };

  try {
    await waitForServing(grpc, {
      credentials: mutualTlsCredentials(options.operator, options.name),
      timeoutMs: options.readyTimeoutMs ?? 60_000,
      abort: exited.then((code) => `exited with ${code}`),
    });
  } catch (error) {
    await stop('SIGKILL');
    throw new Error(
      `${options.name} did not become ready: ${(error as Error).message}\n--- ${options.logFile} ---\n${logTail(options.logFile)}`,
    );
  }
  return { name: options.name, pid, grpc, metrics, logFile: options.logFile, exited, stop };
}
