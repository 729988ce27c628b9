/**
 * Reading a running service's Prometheus metrics from a test: a service's
 * inner state (streams waiting, buffers held, batches refused) is often only
 * visible there, and much of it changes on its own, so tests poll it.
 */

/** Where a service serves /metrics (host:port), as `TestService` and a platform's services say. */
export interface MetricsEndpoint {
  readonly metrics: string;
}

/**
 * A scrape's samples by series: `name{labels}` as the service prints it, without the `service`
 * label every series carries, so a series with no other label is its bare name.
 */
export type MetricSamples = ReadonlyMap<string, number>;

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/;

/** Samples from Prometheus text, keyed as `MetricSamples` says; comments and blank lines are skipped. */
export function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = SAMPLE.exec(line);
    if (match?.[1] === undefined || match[3] === undefined) continue;
    const labels = (match[2] ?? '')
      .replace(/,?service="[^"]*"/, '')
      .replace(/^\{,/, '{')
      .replace(/^\{\}$/, '');
    samples.set(`${match[1]}${labels}`, parseValue(match[3]));
  }
  return samples;
}

function parseValue(text: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return Number(text);
}

/** The service's /metrics as Prometheus text; an answer other than 200 is an error. */
export async function metricsText(service: MetricsEndpoint): Promise<string> {
  const response = await fetch(`http://${service.metrics}/metrics`);
  if (!response.ok) throw new Error(`http://${service.metrics}/metrics answered ${response.status}`);
  return response.text();
}

/** One scrape of the service's /metrics. */
export async function scrapeMetrics(service: MetricsEndpoint): Promise<MetricSamples> {
  return parseMetrics(await metricsText(service));
}

export interface MetricOptions {
  /**
   * What a series the service does not print reads as: 0 for a labelled counter that has not
   * counted yet, say. Without it a missing series is an error, which catches a misspelt name.
   */
  readonly absentAs?: number;
}

function valueOf(samples: MetricSamples, series: string, options: MetricOptions): number {
  const value = samples.get(series) ?? options.absentAs;
  if (value === undefined) throw new Error(`${series} is not among the service's metrics`);
  return value;
}

/** One series' value, now. */
export async function metricValue(
  service: MetricsEndpoint,
  series: string,
  options: MetricOptions = {},
): Promise<number> {
  return valueOf(await scrapeMetrics(service), series, options);
}

/** Reads until `accept` holds of what was read, and answers it; fails after `withinMs`, saying what it read last. */
async function poll<T>(
  read: () => Promise<T>,
  accept: (value: T) => boolean,
  failure: (last: T) => string,
  withinMs: number,
): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const value = await read();
    if (accept(value)) return value;
    if (Date.now() > deadline) throw new Error(`${failure(value)} after ${withinMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Polls the service's /metrics until `accept` holds of a scrape, and answers that scrape. */
export function metricsUntil(
  service: MetricsEndpoint,
  what: string,
  accept: (samples: MetricSamples) => boolean,
  withinMs = 60_000,
): Promise<MetricSamples> {
  return poll(
    () => scrapeMetrics(service),
    accept,
    () => `${what}: not yet`,
    withinMs,
  );
}

/** Polls one series until `accept` holds of its value, and answers that value. */
export function metricUntil(
  service: MetricsEndpoint,
  series: string,
  accept: (value: number) => boolean,
  options: MetricOptions & { readonly withinMs?: number } = {},
): Promise<number> {
  return poll(
    () => metricValue(service, series, options),
    accept,
    (last) => `${series} is still ${last}`,
    options.withinMs ?? 60_000,
  );
}
