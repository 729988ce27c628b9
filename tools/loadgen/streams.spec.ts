/**
 * The streams measurement's pure parts, and the connections load generator
 * refusing what it cannot take (it starts nothing before parsing its options).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseGatewayMemory, percentiles } from './streams';

const METRICS = [
  '# HELP sotto_process_resident_memory_bytes Resident memory size in bytes.',
  'sotto_process_resident_memory_bytes{service="gateway"} 335953920',
  'sotto_nodejs_heap_size_total_bytes{service="gateway"} 200000000',
  'sotto_nodejs_heap_size_used_bytes{service="gateway"} 153843304',
  'sotto_nodejs_heap_space_size_total_bytes{space="old",service="gateway"} 55803904',
  'sotto_nodejs_heap_space_size_total_bytes{space="new",service="gateway"} 134217728',
  'sotto_nodejs_heap_space_size_used_bytes{space="old",service="gateway"} 50000000',
  'sotto_nodejs_heap_space_size_used_bytes{space="new",service="gateway"} 41000000',
  'sotto_nodejs_external_memory_bytes{service="gateway"} 3500000',
].join('\n');

describe('the streams measurement', () => {
  it("reads the gateway's resident memory, heap used and committed, young generation and external memory from its /metrics", () => {
    expect(parseGatewayMemory(METRICS)).toEqual({
      rssBytes: 335953920,
      heapUsedBytes: 153843304,
      youngGenerationBytes: 134217728,
      youngGenerationUsedBytes: 41000000,
      heapCommittedBytes: 200000000,
      externalBytes: 3500000,
      heapTrims: 0,
      heapTrimPauseSeconds: 0,
    });
    expect(() =>
      parseGatewayMemory(METRICS.replace(/^.*space_size_used_bytes\{space="new".*$/m, '')),
    ).toThrow(`sotto_nodejs_heap_space_size_used_bytes{space="new"} is not among the gateway's metrics`);
  });

  it("reads the gateway's heap trims and their pauses when it has them", () => {
    const trimmed = [
      METRICS,
      'sotto_gateway_heap_trim_seconds_sum{service="gateway"} 1.25',
      'sotto_gateway_heap_trim_seconds_count{service="gateway"} 2',
    ].join('\n');
    expect(parseGatewayMemory(trimmed)).toMatchObject({ heapTrims: 2, heapTrimPauseSeconds: 1.25 });
  });

  it('names the series a /metrics page lacks', () => {
    expect(() => parseGatewayMemory('sotto_process_resident_memory_bytes 1')).toThrow(
      "sotto_nodejs_heap_size_used_bytes is not among the gateway's metrics",
    );
  });

  it('reports percentiles of what it measured, and zeros for nothing', () => {
    const values = Array.from({ length: 100 }, (_, index) => 100 - index);
    expect(percentiles(values)).toEqual({ p50: 51, p95: 96, p99: 100, max: 100 });
    expect(percentiles([])).toEqual({ p50: 0, p95: 0, p99: 0, max: 0 });
  });
});

describe('npm run loadgen:connections --streams', () => {
  it.each([
    [['--streams', '0'], '--streams: expected a whole number from 1 to 1000000, got 0'],
    [
      ['--streams', '10', '--streams-per-channel', '101'],
      '--streams-per-channel: expected a whole number from 1 to 100, got 101',
    ],
    [['--heap-snapshot', 'dir'], '--heap-snapshot: only with --streams and without --server'],
    [['--streams', '10', '--report', ''], '--report: expected a file name'],
  ])('refuses %j with one line and exit code 2', (args, message) => {
    const result = spawnSync(
      process.execPath,
      ['-r', '@swc-node/register', 'tools/loadgen/connections.ts', ...args],
      { cwd: join(__dirname, '..', '..'), encoding: 'utf8' },
    );
    expect({ code: result.status, stdout: result.stdout, stderr: result.stderr.trim() }).toEqual({
      code: 2,
      stdout: '',
      stderr: `[loadgen:connections] ${message}`,
    });
  });
});
