import { Counter } from 'prom-client';
import { createMetricsRegistry, startMetricsServer, type MetricsServer } from './server';

describe('metrics server', () => {
  let server: MetricsServer;
  let ready = true;

  beforeAll(async () => {
    const registry = createMetricsRegistry('test-service');
    new Counter({ name: 'sotto_test_events_total', help: 'events', registers: [registry] }).inc(3);
    server = await startMetricsServer({
      host: '127.0.0.1',
      port: 0,
      registry,
      readiness: () => Promise.resolve({ ready, checks: { redis: ready ? 'ok' : 'connection refused' } }),
    });
  });

  afterAll(() => server.close());

  it('serves Prometheus metrics with the service label', async () => {
    const response = await fetch(`http://${server.address}/metrics`);
    expect(response.status).toBe(200);
    const body = await response.text();
    expect(body).toContain('sotto_test_events_total{service="test-service"} 3');
    expect(body).toContain('sotto_process_cpu_seconds_total');
  });

  it('answers liveness and readiness', async () => {
    expect((await fetch(`http://${server.address}/healthz`)).status).toBe(200);
    ready = true;
    expect((await fetch(`http://${server.address}/readyz`)).status).toBe(200);
    ready = false;
    const notReady = await fetch(`http://${server.address}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toEqual({ ready: false, checks: { redis: 'connection refused' } });
  });
});
