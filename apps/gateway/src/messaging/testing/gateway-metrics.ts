/** Resident set size and heap in use, in MiB, for reports. */
export function memoryOf(samples: ReadonlyMap<string, number>): { rssMiB: number; heapMiB: number } {
  const mib = (series: string) => Math.round(((samples.get(series) ?? 0) / 2 ** 20) * 10) / 10;
  return {
    rssMiB: mib('sotto_process_resident_memory_bytes'),
    heapMiB: mib('sotto_nodejs_heap_size_used_bytes'),
  };
}
