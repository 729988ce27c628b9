export { createMetricsRegistry, startMetricsServer, MetricsServer } from './server';
