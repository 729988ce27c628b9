/**
 * The fuzz run: sets up the accounts (see World), sends every gateway method
 * its share of fuzzed calls, a few at a time and interleaved across methods,
 * counts the answers by status code, saves the input of every INTERNAL or
 * UNKNOWN answer, watches the platform's processes, and at the end checks
 * that the victim's state is unchanged and that two new users can still talk.
 */
import { closeSync, mkdirSync, openSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SERVICE_NAMES, type PlatformOptions } from '@sotto/stack';
import { makeCall, type FuzzCall } from './calls';
import { FUZZ_CREDENTIAL, type Entry } from './metadata';
import { Random } from './random';
import {
  codeName,
  FAILING_CODES,
  type Failure,
  type FuzzReport,
  type LoggedErrors,
  type MethodReport,
} from './report';
import { gatewayMethods, type GatewayMethod } from './schema';
import { GatewayCaller, type CallInput, type Outcome, type RawFrame } from './transport';
import { World, type Gateway } from './world';

export interface WatchedProcess {
  readonly pid: number;
  /** Settles when the process ends. */
  readonly exited: Promise<number | string>;
  /** Its log, one JSON object per line: what it logs at error level during the run is reported. */
  readonly logFile?: string;
}

export interface FuzzTarget {
  readonly gateway: Gateway;
  /** The CA's certificate for the raw HTTP/2 connection; the system's roots if undefined. */
  readonly caPem?: Buffer;
  /** The platform's processes, when the fuzzer runs them: none may exit. */
  readonly processes?: Readonly<Record<string, WatchedProcess>>;
}

export interface FuzzOptions {
  readonly requestsPerMethod: number;
  readonly concurrency: number;
  /** The run stops (and fails) if it has not sent every request by then. */
  readonly timeLimitMs: number;
  readonly seed: number;
  /** How long one call may take before the fuzzer gives up on it (DEADLINE_EXCEEDED). */
  readonly callTimeoutMs: number;
  /** Where the inputs of INTERNAL and UNKNOWN answers are saved. */
  readonly inputsDir: string;
  /** The server's largest accepted message; oversized messages are sent past it. */
  readonly maxReceiveBytes: number;
  /** Only methods whose path contains one of these; every method if empty. */
  readonly methods?: readonly string[];
  readonly say: (line: string) => void;
}

/**
 * The platform's environment for a fuzz run: no rate limits, and
 * failed-authentication limits out of reach, so that calls as the fuzz
 * account keep reaching the handlers.
 */
export function fuzzEnvironment(): NonNullable<PlatformOptions['env']> {
  const env: Record<string, Record<string, string>> = {};
  for (const name of SERVICE_NAMES) env[name] = { SOTTO_RATE_LIMITS: 'off' };
  env['gateway'] = {
    ...env['gateway'],
    // The fuzzer sends thousands of wrong credentials from one address; at the
    // default limits, every later call, its own account's included, would be
    // refused before reaching a handler.
    AUTH_FAILURES_PER_SOURCE: '100000000',
    AUTH_FAILURES_PER_DEVICE: '100000000',
  };
  return env;
}

/** Inputs saved per method; further failures are counted and listed without one. */
const SAVED_PER_METHOD = 25;
/** Calls as the fuzz account refused in a row before the fuzzer checks that its credential still works. */
const REFUSALS_BEFORE_CHECK = 20;
const PROGRESS_EVERY_MS = 15_000;

/** A saved input: enough to send the same call again (`npm run fuzz -- --replay FILE`). */
export interface SavedInput {
  readonly method: string;
  readonly caller: string;
  readonly kind: string;
  readonly seed: number;
  readonly request: number;
  /** `-bin` values and every message in base64; the fuzz account's credential as FUZZ_CREDENTIAL. */
  readonly metadata: readonly (readonly [string, string | { readonly base64: string }])[];
  readonly messages: readonly string[];
  readonly raw?: RawFrame;
  readonly answer: { readonly code: string; readonly details: string };
}

function saveInput(
  file: string,
  method: GatewayMethod,
  seed: number,
  request: number,
  call: FuzzCall,
  outcome: Outcome,
): void {
  const saved: SavedInput = {
    method: method.path,
    caller: call.caller,
    kind: call.kind,
    seed,
    request,
    metadata: call.input.metadata.map(([key, value]) => [
      key,
      typeof value === 'string' ? value : { base64: value.toString('base64') },
    ]),
    messages: call.input.messages.map((message) => message.toString('base64')),
    ...(call.input.raw === undefined ? {} : { raw: call.input.raw }),
    answer: { code: codeName(outcome.code), details: outcome.details },
  };
  writeFileSync(file, `${JSON.stringify(saved, null, 2)}\n`);
}

export function loadInput(file: string): { method: string; input: CallInput } {
  const saved = JSON.parse(readFileSync(file, 'utf8')) as SavedInput;
  const metadata: Entry[] = saved.metadata.map(([key, value]) => [
    key,
    typeof value === 'string' ? value : Buffer.from(value.base64, 'base64'),
  ]);
  return {
    method: saved.method,
    input: {
      metadata,
      messages: saved.messages.map((message) => Buffer.from(message, 'base64')),
      ...(saved.raw === undefined ? {} : { raw: saved.raw }),
    },
  };
}

/** The seed of one request: the run's seed and the request's number, mixed. */
function requestSeed(seed: number, index: number): number {
  let x = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
  return (x ^ (x >>> 13)) >>> 0;
}

class Tally {
  private readonly codes = new Map<string, Map<string, number>>();
  private readonly kinds = new Map<string, Map<string, Map<string, number>>>();
  private readonly counts = new Map<string, number>();

  add(method: string, kind: string, code: string): void {
    const byCode = this.codes.get(method) ?? new Map<string, number>();
    byCode.set(code, (byCode.get(code) ?? 0) + 1);
    this.codes.set(method, byCode);
    const byKind = this.kinds.get(method) ?? new Map<string, Map<string, number>>();
    const ofKind = byKind.get(kind) ?? new Map<string, number>();
    ofKind.set(code, (ofKind.get(code) ?? 0) + 1);
    byKind.set(kind, ofKind);
    this.kinds.set(method, byKind);
    this.counts.set(method, (this.counts.get(method) ?? 0) + 1);
  }

  report(methods: readonly GatewayMethod[]): MethodReport[] {
    return methods.map((method) => ({
      method: method.label,
      requests: this.counts.get(method.label) ?? 0,
      codes: Object.fromEntries(this.codes.get(method.label) ?? []),
      byKind: Object.fromEntries(
        [...(this.kinds.get(method.label) ?? [])].map(([kind, codes]) => [kind, Object.fromEntries(codes)]),
      ),
    }));
  }
}

export async function fuzz(target: FuzzTarget, options: FuzzOptions): Promise<FuzzReport> {
  const { say } = options;
  const started = Date.now();
  const methods = gatewayMethods().filter(
    (method) => !options.methods?.length || options.methods.some((wanted) => method.path.includes(wanted)),
  );
  if (methods.length === 0) throw new Error(`no gateway method matches ${options.methods?.join(', ')}`);
  mkdirSync(options.inputsDir, { recursive: true });

  const exits: string[] = [];
  for (const [name, process] of Object.entries(target.processes ?? {})) {
    void process.exited.then((code) => exits.push(`${name} (pid ${process.pid}) exited with ${code}`));
  }

  const world = await World.create(target.gateway, say);
  const logs = new LogWatch(target.processes ?? {});
  const caller = new GatewayCaller(
    target.gateway.address,
    target.gateway.credentials,
    target.caPem,
    options.callTimeoutMs,
  );
  try {
    say("reading the victim's envelopes, prekeys and backups");
    const before = await world.victimState('before');
    const knowledge = world.knowledge();

    const tally = new Tally();
    const failures: Failure[] = [];
    const saved = new Map<string, number>();
    const total = methods.length * options.requestsPerMethod;
    let next = 0;
    let done = 0;
    let refusedInARow = 0;
    let checking: Promise<void> | undefined;
    const deadline = started + options.timeLimitMs;
    say(
      `sending ${options.requestsPerMethod} fuzzed requests to each of ${methods.length} methods (${total} in all), ${options.concurrency} at a time`,
    );
    const progress = setInterval(() => {
      const seconds = (Date.now() - started) / 1000;
      say(
        `${done}/${total} requests, ${Math.round(done / seconds)}/s, ${failures.length} INTERNAL/UNKNOWN so far`,
      );
    }, PROGRESS_EVERY_MS);

    const worker = async (): Promise<void> => {
      while (next < total && exits.length === 0 && Date.now() < deadline) {
        const index = next++;
        const method = methods[index % methods.length];
        if (method === undefined) break;
        const rng = new Random(requestSeed(options.seed, index));
        const call = makeCall(rng, method, knowledge, world.identities(), options.maxReceiveBytes);
        const credential = world.credential;
        const outcome = await caller.call(method, call.input, credential);
        done++;
        const code = codeName(outcome.code);
        tally.add(method.label, call.kind, code);
        const asFuzzAccount = call.input.metadata.some(([, value]) => value === FUZZ_CREDENTIAL);
        world.observe(method.path, asFuzzAccount, call.input.messages, outcome);
        if (FAILING_CODES.has(outcome.code)) {
          const count = (saved.get(method.label) ?? 0) + 1;
          saved.set(method.label, count);
          const file =
            count <= SAVED_PER_METHOD
              ? join(options.inputsDir, `${method.label.replace('/', '.')}-${index}.json`)
              : undefined;
          if (file) saveInput(file, method, options.seed, index, call, outcome);
          failures.push({
            method: method.label,
            request: index,
            kind: call.kind,
            code,
            details: outcome.details,
            ...(file ? { input: file } : {}),
          });
        }
        // A credential that stopped working (rotated by a fuzzed call we could not read, say) is replaced.
        if (call.caller === 'fuzz-account' && code === 'UNAUTHENTICATED' && credential === world.credential) {
          if (++refusedInARow >= REFUSALS_BEFORE_CHECK && checking === undefined) {
            checking = world.ensureFuzzAccount().finally(() => {
              checking = undefined;
              refusedInARow = 0;
            });
          }
        } else if (call.caller === 'fuzz-account') {
          refusedInARow = 0;
        }
        if (checking) await checking;
      }
    };
    await Promise.all(Array.from({ length: options.concurrency }, worker));
    clearInterval(progress);
    caller.close();
    const fuzzSeconds = (Date.now() - started) / 1000;
    say(`sent ${done} requests in ${fuzzSeconds.toFixed(1)} s`);

    const problems: string[] = [];
    if (done < total) {
      problems.push(
        exits.length > 0
          ? `stopped after ${done} of ${total} requests: a service exited`
          : `the time limit ran out after ${done} of ${total} requests`,
      );
    }
    if (failures.length > 0) problems.push(`${failures.length} INTERNAL or UNKNOWN answers`);

    say('checking the victim, and that two new users can still talk');
    let victimProblems: string[];
    try {
      victimProblems = [...world.problems, ...world.compare(before, await world.victimState('after'))];
    } catch (error) {
      victimProblems = [
        ...world.problems,
        `the victim's state could not be read: ${(error as Error).message}`,
      ];
    }
    const conversation = (await world.conversation()) ?? 'ok';
    for (const [name, process] of Object.entries(target.processes ?? {})) {
      if (!isAlive(process.pid) && !exits.some((exit) => exit.startsWith(`${name} `))) {
        exits.push(`${name} (pid ${process.pid}) is gone`);
      }
    }
    if (exits.length > 0) problems.push(`a process of the platform exited: ${exits.join('; ')}`);
    if (victimProblems.length > 0) problems.push(`the victim's state changed: ${victimProblems.join('; ')}`);
    if (conversation !== 'ok') problems.push(`no normal conversation afterwards: ${conversation}`);

    return {
      passed: problems.length === 0,
      seconds: (Date.now() - started) / 1000,
      seed: options.seed,
      requestsPerMethod: options.requestsPerMethod,
      concurrency: options.concurrency,
      methods: tally.report(methods),
      failures,
      processes: { watched: Object.keys(target.processes ?? {}), exits },
      victim: { problems: victimProblems, oneTimePreKeysHandedOut: world.victimKeysHandedOut },
      conversation,
      replacedFuzzAccounts: world.replacedFuzzAccounts,
      loggedErrors: logs.errors(),
      problems,
    };
  } finally {
    caller.close();
    world.close();
  }
}

/** Sends a saved input again, as a new fuzz account where it was sent as one, and says how the gateway answered. */
export async function replay(
  target: FuzzTarget,
  file: string,
  say: (line: string) => void,
): Promise<Outcome> {
  const { method: path, input } = loadInput(file);
  const method = gatewayMethods().find((candidate) => candidate.path === path);
  if (method === undefined) throw new Error(`${path} is not a gateway method`);
  const world = await World.create(target.gateway, say);
  const caller = new GatewayCaller(target.gateway.address, target.gateway.credentials, target.caPem, 30_000);
  try {
    return await caller.call(method, input, world.credential);
  } finally {
    caller.close();
    world.close();
  }
}

/** Where each process's log stood when the run began, to read what it logged at error level since. */
class LogWatch {
  private readonly from = new Map<string, { file: string; offset: number }>();

  constructor(processes: Readonly<Record<string, WatchedProcess>>) {
    for (const [name, process] of Object.entries(processes)) {
      if (process.logFile === undefined) continue;
      this.from.set(name, { file: process.logFile, offset: sizeOf(process.logFile) });
    }
  }

  /** Per process, how many lines it logged at error level or worse, and the first few distinct messages. */
  errors(): Record<string, LoggedErrors> {
    const found: Record<string, LoggedErrors> = {};
    for (const [name, { file, offset }] of this.from) {
      const samples = new Set<string>();
      let count = 0;
      for (const line of readFrom(file, offset).split('\n')) {
        if (!/"level":"(error|fatal)"/.test(line)) continue;
        count++;
        if (samples.size < 5) samples.add(messageOf(line));
      }
      if (count > 0) found[name] = { count, samples: [...samples] };
    }
    return found;
  }
}

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

function readFrom(file: string, offset: number): string {
  const length = sizeOf(file) - offset;
  if (length <= 0) return '';
  const buffer = Buffer.alloc(length);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buffer, 0, length, offset);
  } finally {
    closeSync(fd);
  }
  return buffer.toString('utf8');
}

function messageOf(line: string): string {
  try {
    const entry = JSON.parse(line) as { msg?: unknown; err?: { message?: unknown } };
    const text = [entry.msg, entry.err?.message].filter((part) => typeof part === 'string').join(': ');
    return text.slice(0, 300);
  } catch {
    return line.slice(0, 300);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
