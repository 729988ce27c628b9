/**
 * The wire load generator's group mode in small: a group of 5 for a few seconds against a
 * platform on the harness, every copy decrypted by its recipient; the same copies one-to-one;
 * and its command line, the report under `group`, and what it refuses.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot, startTestPlatform, testTls, type Platform } from '@sotto/testing';
import { measureGroup, type GroupReport } from './group-load';

describe('the wire load generator with --group', () => {
  let platform: Platform | undefined;

  beforeAll(async () => {
    platform = await startTestPlatform();
  });

  afterAll(async () => {
    await platform?.stop();
  });

  it('delivers every copy of every group message exactly once, each read by its recipient, and sets the cost beside one-to-one sends', async () => {
    if (platform === undefined) throw new Error('the platform did not start');
    const pids: Record<string, number> = { loadgen: process.pid };
    for (const service of Object.values(platform.services)) pids[service.name] = service.pid;
    const report = await measureGroup(
      {
        members: 5,
        inFlight: 8,
        durationSeconds: 2,
        warmupSeconds: 1,
        size: 200,
        messages: 1500,
        verify: true,
      },
      { server: platform.gateway, ca: testTls().ca, pids },
      () => undefined,
    );

    // Every upload accepted; each stands for a copy to each of the 4 other members, every one
    // delivered once, to a recipient of it, and decrypted by it to the message sent.
    expect(report).toMatchObject({
      members: 5,
      senders: 4,
      copiesPerMessage: 4,
      plaintextBytes: 200,
      uploadErrors: {},
      lost: 0,
      duplicated: 0,
      unconfirmed: 0,
      unexpected: 0,
    });
    expect(report.uploads).toBeGreaterThan(0);
    expect(report.accepted).toBe(report.uploads);
    expect(report.expectedCopies).toBe(report.accepted * 4);
    expect(report.deliveredCopies).toBe(report.expectedCopies);
    expect(report.verified).toEqual({ copies: report.deliveredCopies, wrong: 0 });
    expect(report.uploadBytes).toBeGreaterThan(report.copyBytes);
    expect(report.copyBytes).toBeGreaterThan(200);

    expect(report.measuredCopies).toBeGreaterThan(0);
    expect(report.measuredUploads).toBeGreaterThan(0);
    expect(report.copiesPerSecond).toBe(Math.round(report.measuredCopies / report.measuredSeconds));
    expect(report.latencyMs.p50).toBeGreaterThan(0);
    expect(report.latencyMs.p50).toBeLessThanOrEqual(report.latencyMs.p95);
    expect(report.latencyMs.p95).toBeLessThanOrEqual(report.latencyMs.p99);
    expect(Object.keys(report.cpuMicrosPerCopy).sort()).toEqual(
      [...Object.keys(pids), 'servers', 'total'].sort(),
    );
    const servers = report.cpuMicrosPerCopy['servers'] ?? 0;
    expect(servers).toBeGreaterThan(0);
    expect(report.serverCpuMicrosPerMessage).toBeCloseTo(servers * 4, 0);

    // The same copies one-to-one, sealed, of the size of a group copy: all delivered once.
    expect(report.oneToOne).toMatchObject({
      send: 'sealed',
      envelopeBytes: report.copyBytes,
      sendErrors: {},
      lost: 0,
      duplicated: 0,
      unconfirmed: 0,
      corrupted: 0,
    });
    expect(report.oneToOne.confirmed).toBe(report.oneToOne.sent);
    expect(report.oneToOne.measuredCopies).toBeGreaterThanOrEqual(report.measuredCopies);
    const oneToOne = report.oneToOne.cpuMicrosPerCopy['servers'] ?? 0;
    expect(oneToOne).toBeGreaterThan(0);
    expect(report.comparison).toEqual({
      serverCpuMicrosPerCopy: { group: servers, oneToOne },
      serverCpuMicrosPerMessage: {
        group: report.serverCpuMicrosPerMessage,
        oneToOne: expect.closeTo(oneToOne * 4, 0),
      },
      messageCostInOneToOneSends: expect.closeTo(report.serverCpuMicrosPerMessage / oneToOne, 1),
      copyCostRatio: expect.closeTo(servers / oneToOne, 2),
      net: expect.objectContaining({
        serverCpuMicrosPerCopy: {
          group: report.serverCpuMicrosPerCopyNet,
          oneToOne: report.oneToOne.serverCpuMicrosPerCopyNet,
        },
      }),
    });
    // Above idle and without Kafka's JIT is less than all of it.
    expect(report.serverCpuMicrosPerCopyNet).toBeLessThanOrEqual(servers);
    expect(report.oneToOne.serverCpuMicrosPerCopyNet).toBeLessThanOrEqual(oneToOne);
  });

  it('runs as npm run loadgen:wire -- --group N and writes the report under `group`', async () => {
    if (platform === undefined) throw new Error('the platform did not start');
    const file = join(mkdtempSync(join(tmpdir(), 'loadgen-group-')), 'group.json');
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [
        ...['-r', '@swc-node/register', 'tools/loadgen/wire.ts', '--group', '3', '--duration', '1'],
        ...['--warmup', '1', '--messages', '800', '--server', platform.gateway, '--ca', testTls().ca],
        ...['--json', file],
      ],
      { cwd: repoRoot(), encoding: 'utf8' },
    );
    const written = JSON.parse(readFileSync(file, 'utf8')) as { group: GroupReport };
    expect(JSON.parse(stdout)).toEqual(written);
    expect(Object.keys(written)).toEqual(['group']);
    expect(written.group).toMatchObject({ members: 3, copiesPerMessage: 2, lost: 0, duplicated: 0 });
    expect(written.group.oneToOne).toMatchObject({ lost: 0, duplicated: 0 });
    // Against --server only the load generator's own CPU is measured: no server figure to compare.
    expect(written.group.comparison.messageCostInOneToOneSends).toBeNull();
    expect(stderr).toMatch(/groups of 3: [\d.]+ uploads\/s, \d+ copies\/s delivered/);
    expect(stderr).toContain('one 3-member message costs the server –× a one-to-one send');
  });

  it.each([
    [['--group', '1'], '--group: expected a whole number from 2 to 1001, got 1'],
    [['--group', '1002'], '--group: expected a whole number from 2 to 1001, got 1002'],
    [['--group', '10', '--rate', '5'], '--rate: not with --group'],
    [['--senders', '2'], '--senders: only with --group'],
    [['--verify'], '--verify: only with --group'],
    [['--group', '10', '--messages', '0'], '--messages: expected a whole number from 1 to 1000000, got 0'],
  ])('refuses %j with one line and exit code 2', (args, message) => {
    const result = spawnSync(
      process.execPath,
      ['-r', '@swc-node/register', 'tools/loadgen/wire.ts', ...args],
      {
        cwd: repoRoot(),
        encoding: 'utf8',
      },
    );
    expect({ code: result.status, stdout: result.stdout }).toEqual({ code: 2, stdout: '' });
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(message);
  });
});
