import {
  metricUntil,
  metricValue,
  startGatewayFor,
  startTestPlatform,
  startTestService,
  type Platform,
} from '@sotto/testing';
import { performance } from 'node:perf_hooks';
import { collectAndCompact, HeapTrimPolicy, LoopUtilizationWindow, oldGeneration } from './heap-trim';
import { PublicApi } from './testing/public-api';

const MIB = 1024 * 1024;

describe('HeapTrimPolicy: when a quiet gateway trims its heap', () => {
  const rule = { minGrowthBytes: 64 * MIB, quietMs: 10_000 };

  it('trims once it has watched a whole quiet window, and the heap has grown', () => {
    const policy = new HeapTrimPolicy(rule);
    expect(policy.shouldTrim(9_999, 0.02, 500 * MIB)).toBe(false);
    expect(policy.shouldTrim(10_000, 0.02, 500 * MIB)).toBe(true);
  });

  it('leaves a gateway whose event loop was a tenth busy or more over the window', () => {
    const policy = new HeapTrimPolicy(rule);
    expect(policy.shouldTrim(10_000, 0.1, 500 * MIB)).toBe(false);
    expect(policy.shouldTrim(10_000, 0.099, 500 * MIB)).toBe(true);
  });

  it('leaves a heap that has not grown far enough past what the last trim kept', () => {
    const policy = new HeapTrimPolicy(rule);
    policy.trimmed(200 * MIB);
    // Grown by 99 MiB: more than 64 MiB, less than half of 200.
    expect(policy.shouldTrim(10_000, 0, 299 * MIB)).toBe(false);
    expect(policy.shouldTrim(10_000, 0, 300 * MIB)).toBe(true);
  });

  it('needs the growth in MiB for a small heap', () => {
    const policy = new HeapTrimPolicy(rule);
    policy.trimmed(20 * MIB);
    expect(policy.shouldTrim(10_000, 0, 83 * MIB)).toBe(false);
    expect(policy.shouldTrim(10_000, 0, 84 * MIB)).toBe(true);
  });
});

describe('LoopUtilizationWindow', () => {
  const busyFor = (ms: number): void => {
    const until = performance.now() + ms;
    while (performance.now() < until);
  };
  const idleFor = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

  it('measures the loop over the last window only, and from nothing after a restart', async () => {
    const loop = new LoopUtilizationWindow(300);
    loop.restart();
    busyFor(200);
    await idleFor(20);
    const busy = loop.record();
    expect(busy.coveredMs).toBeLessThan(300);
    expect(busy.utilization).toBeGreaterThan(0.8);

    // Idle for longer than the window, looking now and then: the busy stretch drops out of it.
    for (let look = 0; look < 8; look++) {
      await idleFor(60);
      loop.record();
    }
    const quiet = loop.record();
    expect(quiet.coveredMs).toBeGreaterThanOrEqual(300);
    expect(quiet.coveredMs).toBeLessThan(450);
    expect(quiet.utilization).toBeLessThan(0.1);

    loop.restart();
    expect(loop.record().coveredMs).toBeLessThan(50);
  });
});

describe('collectAndCompact', () => {
  it("gives back the old generation's pages that only garbage was keeping", () => {
    // Small objects that live long enough to reach the old generation, then nine in ten dropped:
    // every page keeps a tenth, so a collection that only sweeps gives back almost nothing.
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
    // What the old generation uses is what is live, and it has committed little more than that.
    expect(after.usedBytes).toBeLessThan(before.usedBytes / 2);
    expect(after.committedBytes).toBeLessThan(before.committedBytes / 2);
    expect(after.committedBytes).toBeLessThan(after.usedBytes * 1.5 + 16 * MIB);
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
    // A gateway of its own, which has not trimmed yet: its first trim comes 5 s after it goes quiet.
    const gateway = await startGatewayFor(platform, {
      GATEWAY_HEAP_TRIM_MIB: '1',
      GATEWAY_HEAP_TRIM_QUIET_MS: '5000',
    });
    const bobs = new PublicApi(gateway.grpc);
    const inbox = bobs.connect(bob);
    try {
      expect(await inbox.untilEmpty()).toEqual([]);
      expect(await metricValue(gateway, 'sotto_gateway_heap_trims_total')).toBe(0);

      // Starting it grew its heap far past the 1 MiB asked for; once quiet for 5 s, it trims.
      await metricUntil(gateway, 'sotto_gateway_heap_trims_total', (count) => count >= 1, {
        withinMs: 30_000,
      });
      expect(await metricValue(gateway, 'sotto_gateway_heap_trim_seconds_count')).toBeGreaterThanOrEqual(1);

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
      await new Promise((resolve) => setTimeout(resolve, 4_000));
      expect(await metricValue(gateway, 'sotto_gateway_heap_trims_total')).toBe(0);
    } finally {
      await gateway.stop();
    }
  });
});
