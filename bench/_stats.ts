/** Small statistics shared by the benchmarks. */

/** The p-th percentile (nearest rank) of a list of timings. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}
