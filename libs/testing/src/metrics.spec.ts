import { Counter, Gauge } from 'prom-client';
import { createMetricsRegistry, startMetricsServer, type MetricsServer } from '@sotto/platform/metrics';
import { metricsUntil, metricUntil, metricValue, parseMetrics } from './metrics';

describe('parseMetrics', () => {
  it('keys each sample by its series without the service label, skipping comments', () => {
    const text = [
      '# HELP sotto_things_total Things.',
      '# TYPE sotto_things_total counter',
      'sotto_things_total{service="gateway"} 3',
      'sotto_hits_total{limit="send",service="gateway"} 2',
      'sotto_hits_total{service="gateway",limit="lookup"} 5',
      'sotto_waits_total{outcome="granted",reason="room",service="backup-store"} 7',
      'sotto_latency_seconds_bucket{le="+Inf",service="gateway"} 9',
      'sotto_ratio 0.25',
      'sotto_ceiling +Inf',
      '',
    ].join('\n');
    expect([...parseMetrics(text)]).toEqual([
      ['sotto_things_total', 3],
      ['sotto_hits_total{limit="send"}', 2],
      ['sotto_hits_total{limit="lookup"}', 5],
      ['sotto_waits_total{outcome="granted",reason="room"}', 7],
      ['sotto_latency_seconds_bucket{le="+Inf"}', 9],
      ['sotto_ratio', 0.25],
      ['sotto_ceiling', Infinity],
    ]);
  });
});

describe("reading a service's /metrics", () => {
  let server: MetricsServer;
  let events: Counter<'kind'>;
  let level: Gauge;

  beforeAll(async () => {
    const registry = createMetricsRegistry('test-service');
    events = new Counter({
      name: 'sotto_test_events_total',
      help: 'events',
      labelNames: ['kind'],
      registers: [registry],
    });
    level = new Gauge({ name: 'sotto_test_level', help: 'level', registers: [registry] });
    server = await startMetricsServer({
      host: '127.0.0.1',
      port: 0,
      registry,
      readiness: () => Promise.resolve({ ready: true, checks: {} }),
    });
  });

  afterAll(() => server.close());

  const service = () => ({ metrics: server.address });

  it('reads a series, refusing one it does not print unless told what that reads as', async () => {
    level.set(4);
    expect(await metricValue(service(), 'sotto_test_level')).toBe(4);
    await expect(metricValue(service(), 'sotto_test_events_total{kind="late"}')).rejects.toThrow(
      'sotto_test_events_total{kind="late"} is not among the service\'s metrics',
    );
    expect(await metricValue(service(), 'sotto_test_events_total{kind="late"}', { absentAs: 0 })).toBe(0);
  });

  it('waits until a series reaches a value the service gets to on its own', async () => {
    const counting = setInterval(() => events.inc({ kind: 'tick' }), 20);
    try {
      expect(
        await metricUntil(service(), 'sotto_test_events_total{kind="tick"}', (value) => value >= 5, {
          absentAs: 0,
        }),
      ).toBeGreaterThanOrEqual(5);
      const samples = await metricsUntil(
        service(),
        'ten ticks',
        (each) => (each.get('sotto_test_events_total{kind="tick"}') ?? 0) >= 10,
      );
      expect(samples.get('sotto_test_level')).toBe(4);
    } finally {
      clearInterval(counting);
    }
  });

  it('fails, naming the series and its last value, when it never gets there', async () => {
    level.set(1);
    await expect(
      metricUntil(service(), 'sotto_test_level', (value) => value === 2, { withinMs: 200 }),
    ).rejects.toThrow('sotto_test_level is still 1 after 200 ms');
  });
});
