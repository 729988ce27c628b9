import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Counter, Histogram, Registry } from 'prom-client';
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

/** Below this share of its time busy, the event loop counts as quiet. */
export const QUIET_UTILIZATION = 0.1;
/** How often the gateway looks at its event loop and its heap. */
const LOOK_EVERY_MS = 1_000;
/** After a trim, V8 collects again once the old generation is this much larger than what was kept. */
const HEADROOM_PERCENT = 100;
const MIB = 1024 * 1024;

export interface HeapTrimRule {
  /** How far the old generation must have grown past what the last trim kept; it must also have grown by half. */
  readonly minGrowthBytes: number;
  /** How long the event loop must have been quiet. */
  readonly quietMs: number;
}

/** When to trim, from what the gateway sees each time it looks; without a heap, so that tests can drive it. */
export class HeapTrimPolicy {
  private keptBytes = 0;

  constructor(private readonly rule: HeapTrimRule) {}

  /**
   * One look: for how long, up to now, the gateway has been watching its event loop since it
   * started or last trimmed (`watchedMs`), how busy the loop was over the last `quietMs` of that
   * (0 to 1), and how many bytes the old generation has committed. True when it is time to trim.
   */
  shouldTrim(watchedMs: number, utilization: number, committedBytes: number): boolean {
    return (
      watchedMs >= this.rule.quietMs &&
      utilization < QUIET_UTILIZATION &&
      committedBytes - this.keptBytes >= Math.max(this.rule.minGrowthBytes, this.keptBytes / 2)
    );
  }

  /** A trim kept this many bytes. */
  trimmed(keptBytes: number): void {
    this.keptBytes = keptBytes;
  }
}

/**
 * How busy the event loop was over the last `windowMs`, from a snapshot of its utilization taken
 * at each look: one busy second (a round of heartbeats) in a quiet window does not make it busy.
 */
export class LoopUtilizationWindow {
  private readonly snapshots: { atMs: number; utilization: EventLoopUtilization }[] = [];

  constructor(private readonly windowMs: number) {}

  /** Starts afresh: what happened before does not count. */
  restart(): void {
    this.snapshots.length = 0;
    this.record();
  }

  /** Takes a snapshot; answers how long the window now covers and how busy the loop was over it. */
  record(): { coveredMs: number; utilization: number } {
    const atMs = performance.now();
    const utilization = performance.eventLoopUtilization();
    this.snapshots.push({ atMs, utilization });
    // Keep the newest snapshot at least windowMs old, so that the window is covered once it can be.
    while (this.snapshots.length > 1 && (this.snapshots[1]?.atMs ?? atMs) <= atMs - this.windowMs) {
      this.snapshots.shift();
    }
    const oldest = this.snapshots[0] ?? { atMs, utilization };
    return {
      coveredMs: atMs - oldest.atMs,
      utilization: performance.eventLoopUtilization(utilization, oldest.utilization).utilization,
    };
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
 * Collects the whole heap at once, compacting every page of the old generation, and has V8 let
 * it grow by `headroomPercent` of what it kept before the next full collection; then puts V8's
 * growth back to `growingPercent` (0: its own). Blocks until done.
 */
export function collectAndCompact(headroomPercent: number, growingPercent: number): void {
  if (fullCollection === undefined) {
    // V8's gc(), in a context made after it is exposed; the gateway's own global stays as it was.
    setFlagsFromString('--expose-gc');
    fullCollection = runInNewContext('gc') as () => void;
  }
  setFlagsFromString('--compact-on-every-full-gc');
  setFlagsFromString(`--heap-growing-percent=${headroomPercent}`);
  try {
    fullCollection();
  } finally {
    setFlagsFromString('--no-compact-on-every-full-gc');
    setFlagsFromString(`--heap-growing-percent=${growingPercent}`);
  }
}

@Injectable()
export class HeapTrim implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(HeapTrim.name);
  private readonly policy: HeapTrimPolicy;
  private readonly trims: Counter;
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
    this.trims = new Counter({
      name: 'sotto_gateway_heap_trims_total',
      help: 'Full, compacting collections the gateway ran while quiet to give back the memory its heap had grown to (GATEWAY_HEAP_TRIM_MIB).',
      registers: [registry],
    });
    this.pauses = new Histogram({
      name: 'sotto_gateway_heap_trim_seconds',
      help: 'How long each heap trim paused the gateway.',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    });
  }

  onModuleInit(): void {
    if (this.env.GATEWAY_HEAP_TRIM_MIB === 0) return;
    this.loop.restart();
    this.timer = setInterval(() => this.look(), LOOK_EVERY_MS).unref();
  }

  private look(): void {
    const { coveredMs, utilization } = this.loop.record();
    const before = oldGeneration();
    if (!this.policy.shouldTrim(coveredMs, utilization, before.committedBytes)) return;

    const started = performance.now();
    collectAndCompact(HEADROOM_PERCENT, this.env.GATEWAY_HEAP_GROWING_PERCENT);
    const pausedMs = performance.now() - started;
    const after = oldGeneration();
    this.policy.trimmed(after.usedBytes);
    // The trim's own pause is not the gateway's work; quiet is counted afresh after it.
    this.loop.restart();
    this.trims.inc();
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
