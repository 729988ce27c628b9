import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { ReadinessReport } from '@sotto/platform/health';

export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry, prefix: 'sotto_' });
  return registry;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export interface MetricsServer {
  /** host:port actually bound. */
  readonly address: string;
  close(): Promise<void>;
}

/**
 * The service's HTTP side port: `/metrics` for Prometheus, `/healthz` for
 * liveness (the process answers) and `/readyz` for readiness (its storage answers).
 */
export async function startMetricsServer(options: {
  host: string;
  port: number;
  registry: Registry;
  readiness: () => Promise<ReadinessReport>;
}): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    const send = (status: number, contentType: string, body: string): void => {
      response.writeHead(status, { 'content-type': contentType }).end(body);
    };
    if (request.method !== 'GET') {
      send(405, 'text/plain', 'method not allowed\n');
      return;
    }
    switch (path) {
      case '/metrics':
        options.registry.metrics().then(
          (body) => send(200, options.registry.contentType, body),
          (error: unknown) => send(500, 'text/plain', `${messageOf(error)}\n`),
        );
        return;
      case '/healthz': {
        send(200, 'application/json', '{"live":true}\n');
        return;
      }
      case '/readyz':
        options.readiness().then(
          (report) => send(report.ready ? 200 : 503, 'application/json', `${JSON.stringify(report)}\n`),
          (error: unknown) =>
            send(503, 'application/json', `${JSON.stringify({ ready: false, error: messageOf(error) })}\n`),
        );
        return;
      default: {
        send(404, 'text/plain', 'not found\n');
        return;
      }
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  return {
    address: `${options.host}:${bound.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
