import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Histogram, Registry } from 'prom-client';
import { GATEWAY_ENV, type GatewayEnv } from './env';

/**
 * A quiet gateway gives back the memory its heap grew to.
 *
 * While thousands of streams open, or a burst passes, V8 lets its old generation grow up to four
 * times past what its last full collection kept, and keeps those pages committed once they hold
 * only garbage. A gateway that then holds its streams idle allocates too little to start another
 * collection soon: 45 s after 20,000 streams opened, its old generation had 25–32 KB a stream
 * committed, of which the streams kept 7–9 (docs/capacity.md). So once the gateway has been quiet
 * for a while, and its old generation has grown well past what the last trim kept, it runs one full
 * collection that compacts every page, and lets V8 grow to twice what was kept before it collects
 * again, so that a burst right after does not meet a collection at once. The collection pauses the
 * gateway, for about as long as marking and moving what it keeps takes: it runs only when there is
 * little to hold up.
 */

/**
 * Below this share of its time busy, over the whole quiet window and over the last second, the
 * event loop counts as quiet: at the ~150 µs of gateway CPU a message costs under load, a few
 * hundred messages a second at most, and not a burst that began within the last second.
 */
export const QUIET_UTILIZATION = 0.05;
/** How often the gateway looks at its event loop and its heap. */
const LOOK_EVERY_MS = 1_000;
/** After a trim, V8 collects again once the old generation is this much larger than what was kept (unless GATEWAY_HEAP_GROWING_PERCENT says less). */
const HEADROOM_PERCENT = 100;
const MIB = 1024 * 1024;

export interface HeapTrimRule {
  /** How far the old generation must have grown past what the last trim left committed; it must also have grown by half. */
  readonly minGrowthBytes: number;
  /** How long the event loop must have been quiet. */
  readonly quietMs: number;
}

/** How busy the event loop was over a stretch of time (0 to 1), and how long that stretch is. */
export interface LoopBusy {
  readonly coveredMs: number;
  readonly utilization: number;
}

/** When to trim, from what the gateway sees each time it looks; without a heap, so that tests can drive it. */
export class HeapTrimPolicy {
  /** What the last trim left committed; before the first, nothing, so a gateway that grew GATEWAY_HEAP_TRIM_MIB trims. */
  private keptBytes = 0;

  constructor(private readonly rule: HeapTrimRule) {}

  /**
   * One look: how busy the loop was over the quiet window (which covers `coveredMs` of it so far)
   * and over the last look's interval, and how many bytes the old generation has committed. True
   * when it is time to trim.
   */
  shouldTrim(window: LoopBusy, lastInterval: LoopBusy, committedBytes: number): boolean {
    return (
      window.coveredMs >= this.rule.quietMs &&
      window.utilization < QUIET_UTILIZATION &&
      lastInterval.utilization < QUIET_UTILIZATION &&
      committedBytes - this.keptBytes >= Math.max(this.rule.minGrowthBytes, this.keptBytes / 2)
    );
  }

  /**
   * A trim left this many bytes committed: the next needs growth past it, so a trim that gave
   * little back is not repeated at every quiet window.
   */
  trimmed(committedBytes: number): void {
    this.keptBytes = committedBytes;
  }
}

/** How busy the loop was between two snapshots of its utilization, the later first. */
function busyBetween(
  later: { atMs: number; utilization: EventLoopUtilization },
  earlier: { atMs: number; utilization: EventLoopUtilization },
): LoopBusy {
  const active = later.utilization.active - earlier.utilization.active;
  const idle = later.utilization.idle - earlier.utilization.idle;
  return {
    coveredMs: later.atMs - earlier.atMs,
    utilization: active + idle > 0 ? active / (active + idle) : 0,
  };
}

/**
 * How busy the event loop was over the last `windowMs`, and over the last look's interval, from
 * snapshots of its utilization (`performance.eventLoopUtilization()`) taken at each look: one busy
 * second (a round of heartbeats) in a quiet window does not make the window busy.
 */
export class LoopUtilizationWindow {
  private readonly snapshots: { atMs: number; utilization: EventLoopUtilization }[] = [];

  constructor(private readonly windowMs: number) {}

  /** Starts afresh from this snapshot: what happened before does not count. */
  restart(atMs: number, utilization: EventLoopUtilization): void {
    this.snapshots.length = 0;
    this.snapshots.push({ atMs, utilization });
  }

  /** Adds a snapshot; answers how busy the loop was over the window (as far as it is covered yet) and since the last snapshot. */
  record(atMs: number, utilization: EventLoopUtilization): { window: LoopBusy; lastInterval: LoopBusy } {
    const now = { atMs, utilization };
    const previous = this.snapshots[this.snapshots.length - 1] ?? now;
    this.snapshots.push(now);
    // Keep the newest snapshot at least windowMs old, so that the window is covered once it can be.
    while (this.snapshots.length > 1 && (this.snapshots[1]?.atMs ?? atMs) <= atMs - this.windowMs) {
      this.snapshots.shift();
    }
    return { window: busyBetween(now, this.snapshots[0] ?? now), lastInterval: busyBetween(now, previous) };
  }
}

/** The old generation's committed and used bytes: every space but the young generation's. */
export function oldGeneration(): { committedBytes: number; usedBytes: number } {
  let committedBytes = 0;
  let usedBytes = 0;
  for (const space of getHeapSpaceStatistics()) {
    if (space.space_name === 'new_space' || space.space_name === 'new_large_object_space') continue;
    committedBytes += space.space_size;
    usedBytes += space.space_used_size;
  }
  return { committedBytes, usedBytes };
}

let fullCollection: (() => void) | undefined;

/**
 * V8's gc(), from a context made after it is exposed (the process's own global stays as it was).
 * Resolved as the gateway starts, so that a V8 without it fails then and not at the first trim.
 */
export function exposeFullCollection(): void {
  if (fullCollection !== undefined) return;
  setFlagsFromString('--expose-gc');
  const gc: unknown = runInNewContext('gc');
  if (typeof gc !== 'function')
    throw new Error('V8 did not expose gc(): GATEWAY_HEAP_TRIM_MIB=0 turns heap trims off');
  fullCollection = gc as () => void;
}

/**
 * Collects the whole heap at once, compacting every page of the old generation, and has V8 let
 * it grow by `headroomPercent` of what it kept before the next full collection; then puts V8's
 * growth back to `growingPercent` (0: its own). Blocks until done.
 */
export function collectAndCompact(headroomPercent: number, growingPercent: number): void {
  exposeFullCollection();
  const collect = fullCollection as () => void;
  setFlagsFromString('--compact-on-every-full-gc');
  setFlagsFromString(`--heap-growing-percent=${headroomPercent}`);
  try {
    collect();
  } finally {
    setFlagsFromString('--no-compact-on-every-full-gc');
    setFlagsFromString(`--heap-growing-percent=${growingPercent}`);
  }
}

@Injectable()
export class HeapTrim implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(HeapTrim.name);
  private readonly policy: HeapTrimPolicy;
  private readonly pauses: Histogram;
  private readonly loop: LoopUtilizationWindow;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    @Inject(GATEWAY_ENV) private readonly env: GatewayEnv,
    registry: Registry,
  ) {
    this.policy = new HeapTrimPolicy({
      minGrowthBytes: env.GATEWAY_HEAP_TRIM_MIB * MIB,
      quietMs: env.GATEWAY_HEAP_TRIM_QUIET_MS,
    });
    this.loop = new LoopUtilizationWindow(env.GATEWAY_HEAP_TRIM_QUIET_MS);
    this.pauses = new Histogram({
      name: 'sotto_gateway_heap_trim_seconds',
      help: 'Heap trims (full, compacting collections the gateway ran while quiet to give back the memory its heap had grown to; GATEWAY_HEAP_TRIM_MIB) and how long each paused the gateway; _count counts them.',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
  }

  onModuleInit(): void {
    if (this.env.GATEWAY_HEAP_TRIM_MIB === 0) return;
    exposeFullCollection();
    this.loop.restart(performance.now(), performance.eventLoopUtilization());
    this.timer = setInterval(() => this.look(), LOOK_EVERY_MS).unref();
  }

  private look(): void {
    const { window, lastInterval } = this.loop.record(performance.now(), performance.eventLoopUtilization());
    const before = oldGeneration();
    if (!this.policy.shouldTrim(window, lastInterval, before.committedBytes)) return;

    const started = performance.now();
    const growing = this.env.GATEWAY_HEAP_GROWING_PERCENT;
    collectAndCompact(growing > 0 ? Math.min(growing, HEADROOM_PERCENT) : HEADROOM_PERCENT, growing);
    const pausedMs = performance.now() - started;
    const after = oldGeneration();
    this.policy.trimmed(after.committedBytes);
    // The trim's own pause is not the gateway's work; quiet is counted afresh after it.
    this.loop.restart(performance.now(), performance.eventLoopUtilization());
    this.pauses.observe(pausedMs / 1000);
    this.logger.log(
      `heap trimmed while quiet: the old generation had ${Math.round(before.committedBytes / MIB)} MiB committed, ` +
        `${Math.round(after.usedBytes / MIB)} MiB kept; paused ${Math.round(pausedMs)} ms`,
    );
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }
}
