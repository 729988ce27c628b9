/** A gateway as tests start it: where it serves /metrics. */
interface MetricsEndpoint {
  readonly metrics: string;
}

/** One sample of a gateway's /metrics: `name{labels}` → value, without the service="gateway" label. */
export async function gatewayMetrics(service: MetricsEndpoint): Promise<Map<string, number>> {
  const text = await (await fetch(`http://${service.metrics}/metrics`)).text();
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!match?.[1] || match[3] === undefined) continue;
    // Every series carries service="gateway"; tests name the other labels only.
    const labels = (match[2] ?? '').replace(/,?service="gateway"/, '').replace(/^\{,?/, '{');
    samples.set(`${match[1]}${labels === '{}' ? '' : labels}`, Number(match[3]));
  }
  return samples;
}

export async function gatewayMetric(service: MetricsEndpoint, series: string): Promise<number> {
  const value = (await gatewayMetrics(service)).get(series);
  if (value === undefined) throw new Error(`${series} is not among the gateway's metrics`);
  return value;
}

/**
 * Polls a series until `accept` holds (the gateway's inner state is only
 * visible there); fails after `withinMs`.
 */
export async function gatewayMetricUntil(
  service: MetricsEndpoint,
  series: string,
  accept: (value: number) => boolean,
  withinMs = 60_000,
): Promise<number> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const value = await gatewayMetric(service, series);
    if (accept(value)) return value;
    if (Date.now() > deadline) throw new Error(`${series} is still ${value} after ${withinMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Resident set size and heap in use, in MiB, for reports. */
export function memoryOf(samples: ReadonlyMap<string, number>): { rssMiB: number; heapMiB: number } {
  const mib = (series: string) => Math.round(((samples.get(series) ?? 0) / 2 ** 20) * 10) / 10;
  return {
    rssMiB: mib('sotto_process_resident_memory_bytes'),
    heapMiB: mib('sotto_nodejs_heap_size_used_bytes'),
  };
}
