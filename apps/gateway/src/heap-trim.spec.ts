import {
  metricValue,
  startGatewayFor,
  startTestPlatform,
  startTestService,
  type Platform,
} from '@sotto/testing';
import { collectAndCompact, HeapTrimPolicy, LoopUtilizationWindow, oldGeneration } from './heap-trim';
import { PublicApi } from './testing/public-api';

const MIB = 1024 * 1024;

describe('HeapTrimPolicy: when a quiet gateway trims its heap', () => {
  const rule = { minGrowthBytes: 64 * MIB, quietMs: 10_000 };
  const quiet = { coveredMs: 10_000, utilization: 0.02 };
  const quietSecond = { coveredMs: 1_000, utilization: 0.02 };

  it('trims once a whole window was quiet, and the heap has grown', () => {
    const policy = new HeapTrimPolicy(rule);
    expect(policy.shouldTrim({ ...quiet, coveredMs: 9_999 }, quietSecond, 500 * MIB)).toBe(false);
    expect(policy.shouldTrim(quiet, quietSecond, 500 * MIB)).toBe(true);
  });

  it('leaves a gateway 5% busy or more over the window, or over the last second', () => {
    const policy = new HeapTrimPolicy(rule);
    expect(policy.shouldTrim({ ...quiet, utilization: 0.05 }, quietSecond, 500 * MIB)).toBe(false);
    expect(policy.shouldTrim({ ...quiet, utilization: 0.049 }, quietSecond, 500 * MIB)).toBe(true);
    // Nine quiet seconds and then a burst: the window is still under 5%, the last second is not.
    expect(policy.shouldTrim(quiet, { coveredMs: 1_000, utilization: 0.4 }, 500 * MIB)).toBe(false);
  });

  it('leaves a heap that has not grown far enough past what the last trim left committed', () => {
    const policy = new HeapTrimPolicy(rule);
    policy.trimmed(200 * MIB);
    // Grown by 99 MiB: more than 64 MiB, less than half of 200.
    expect(policy.shouldTrim(quiet, quietSecond, 299 * MIB)).toBe(false);
    expect(policy.shouldTrim(quiet, quietSecond, 300 * MIB)).toBe(true);
  });

  it('needs the growth in MiB for a small heap, and from nothing before the first trim', () => {
    const policy = new HeapTrimPolicy(rule);
    expect(policy.shouldTrim(quiet, quietSecond, 63 * MIB)).toBe(false);
    expect(policy.shouldTrim(quiet, quietSecond, 64 * MIB)).toBe(true);
    policy.trimmed(20 * MIB);
    expect(policy.shouldTrim(quiet, quietSecond, 83 * MIB)).toBe(false);
    expect(policy.shouldTrim(quiet, quietSecond, 84 * MIB)).toBe(true);
  });
});

describe('LoopUtilizationWindow', () => {
  /** A snapshot of the loop after `active` and `idle` ms in all, as performance.eventLoopUtilization() gives it. */
  const snapshot = (active: number, idle: number) => ({
    active,
    idle,
    utilization: active / (active + idle),
  });

  it('measures the loop over the last window and the last interval, and from nothing after a restart', () => {
    const loop = new LoopUtilizationWindow(3_000);
    loop.restart(0, snapshot(0, 0));
    // A busy second, then quiet ones, a look each second.
    let active = 900;
    let idle = 100;
    const busy = loop.record(1_000, snapshot(active, idle));
    expect(busy.window).toEqual({ coveredMs: 1_000, utilization: 0.9 });
    expect(busy.lastInterval).toEqual({ coveredMs: 1_000, utilization: 0.9 });
    let last = busy;
    for (let second = 2; second <= 5; second++) {
      active += 10;
      idle += 990;
      last = loop.record(second * 1_000, snapshot(active, idle));
    }
    // The window is the last 3 s: the busy second has dropped out of it.
    expect(last.window.coveredMs).toBe(3_000);
    expect(last.window.utilization).toBeCloseTo(0.01);
    expect(last.lastInterval).toEqual({ coveredMs: 1_000, utilization: 0.01 });

    loop.restart(5_500, snapshot(active, idle));
    expect(loop.record(6_500, snapshot(active + 10, idle + 990)).window.coveredMs).toBe(1_000);
  });
});

describe('collectAndCompact', () => {
  it("gives back the old generation's pages that only garbage was keeping", () => {
    // Garbage the test process already holds goes first, so that it does not count below.
    collectAndCompact(100, 0);
    // Small objects that live long enough to reach the old generation, then nine in ten dropped:
    // every page keeps a tenth, so a collection that only sweeps gives back almost no pages.
    const kept: object[] = [];
    let all: object[] = [];
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 400_000; i++) all.push({ round, i, text: `entry ${i}` });
    }
    collectAndCompact(100, 0);
    for (let i = 0; i < all.length; i += 10) kept.push(all[i]);
    all = [];
    const before = oldGeneration();

    collectAndCompact(100, 0);

    const after = oldGeneration();
    expect(kept).toHaveLength(240_000);
    // Measured against the moment before, not against the process's start: a jest worker may
    // still let go of what earlier suites left it between the two, which would skew a baseline.
    const freedUsed = before.usedBytes - after.usedBytes;
    const freedCommitted = before.committedBytes - after.committedBytes;
    // About 185 MiB of the 2.4 million objects were garbage.
    expect(freedUsed).toBeGreaterThan(100 * MIB);
    // A sweep alone frees the objects but keeps their pages: about 20 of those 185 MiB come back.
    // Compacted, the pages the survivors left come back with them.
    expect(freedCommitted).toBeGreaterThan(freedUsed * 0.8);
    // So what it keeps committed is little more than what is live: no more spare than it had
    // while the garbage still counted as used (a sweep alone leaves about 170 MiB spare).
    const spare = (of: { committedBytes: number; usedBytes: number }) => of.committedBytes - of.usedBytes;
    expect(spare(after)).toBeLessThan(spare(before) + 16 * MIB);
  });
});

describe('a gateway trims its heap once quiet', () => {
  let platform: Platform;
  let api: PublicApi;

  beforeAll(async () => {
    platform = await startTestPlatform();
    api = new PublicApi(platform.gateway);
  });

  afterAll(async () => {
    api?.close();
    await platform?.stop();
  });

  it('trims within its quiet window, and a stream it held through the trim delivers after', async () => {
    const [alice, bob] = await Promise.all([api.register(), api.register()]);
    // A gateway of its own, which has not trimmed yet: its first trim comes 10 s after it goes quiet.
    const gateway = await startGatewayFor(platform, { GATEWAY_HEAP_TRIM_MIB: '1' });
    const bobs = new PublicApi(gateway.grpc);
    const inbox = bobs.connect(bob);
    try {
      expect(await inbox.untilEmpty()).toEqual([]);
      expect(await metricValue(gateway, 'sotto_gateway_heap_trim_seconds_count')).toBe(0);

      // Starting it grew its heap far past the 1 MiB asked for; once quiet for 10 s, it trims.
      // Read once a second: reading /metrics is work on the gateway's event loop.
      const deadline = Date.now() + 40_000;
      while ((await metricValue(gateway, 'sotto_gateway_heap_trim_seconds_count')) < 1) {
        if (Date.now() > deadline) throw new Error('the gateway did not trim within 40 s of quiet');
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
      expect(await metricValue(gateway, 'sotto_gateway_heap_trim_seconds_sum')).toBeGreaterThan(0);

      await api.send(alice, bob, 'after the trim');
      const message = await inbox.next();
      expect(message !== 'end' && Buffer.from(message.envelope?.content ?? []).toString()).toBe(
        'after the trim',
      );
    } finally {
      inbox.call.end();
      bobs.close();
      await gateway.stop();
    }
  });
});

describe('GATEWAY_HEAP_TRIM_MIB=0', () => {
  it('never trims', async () => {
    const gateway = await startTestService('gateway', {
      GATEWAY_HEAP_TRIM_MIB: '0',
      GATEWAY_HEAP_TRIM_QUIET_MS: '1000',
    });
    try {
      // Started, its old generation is far past 1 MiB: with GATEWAY_HEAP_TRIM_MIB=1 it would trim within 2 s.
      await new Promise((resolve) => setTimeout(resolve, 4_000));
      expect(await metricValue(gateway, 'sotto_gateway_heap_trim_seconds_count')).toBe(0);
    } finally {
      await gateway.stop();
    }
  });
});
