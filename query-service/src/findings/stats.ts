/**
 * Robust baselines: median and median absolute deviation (MAD), which one
 * outlier cannot move, for counts per window where most windows of a quiet
 * identity are empty. A multiset is given as `zeros` empty windows plus the
 * counts of the non-empty ones, so a week of 5-minute windows never has to
 * be materialised as 2016 mostly-zero numbers.
 */

/** MAD × 1.4826 estimates the standard deviation of normally distributed data; FINDINGS.md calls it the spread. */
export const MAD_TO_SPREAD = 1.4826

/** A robust summary of counts per window or period. */
export interface Baseline {
  /** Median count. */
  median: number
  /** Median absolute deviation from the median (unscaled). */
  mad: number
  /** How many windows or periods it summarises. */
  size: number
}

/** The k-th smallest (0-based) of `zeros` zeros followed by `sorted` (ascending, non-negative). */
function kthWithZeros(sorted: readonly number[], zeros: number, k: number): number {
  return k < zeros ? 0 : (sorted[k - zeros] ?? 0)
}

/** Median of `zeros` zeros plus the ascending non-negative `sorted` values; 0 for an empty multiset. */
export function medianWithZeros(sorted: readonly number[], zeros: number): number {
  const n = zeros + sorted.length
  if (n === 0) return 0
  const upper = kthWithZeros(sorted, zeros, Math.floor(n / 2))
  return n % 2 === 1 ? upper : (kthWithZeros(sorted, zeros, n / 2 - 1) + upper) / 2
}

/** Median absolute deviation of `zeros` zeros plus `sorted`, around `median`. */
export function madWithZeros(sorted: readonly number[], zeros: number, median: number): number {
  // Each zero deviates by exactly `median`; those deviations are the "zeros" of a shifted multiset.
  const deviations = sorted.map((v) => Math.abs(v - median))
  deviations.push(...new Array<number>(zeros).fill(median))
  deviations.sort((a, b) => a - b)
  return medianWithZeros(deviations, 0)
}

/** Median and MAD of a list of counts. */
export function baselineOf(values: readonly number[]): Baseline {
  const sorted = [...values].sort((a, b) => a - b)
  const median = medianWithZeros(sorted, 0)
  return { median, mad: madWithZeros(sorted, 0, median), size: values.length }
}

/**
 * The counts of the windows in a sliding stretch, kept sorted so the median
 * of the stretch is read in O(1) as it slides over a series. Only non-empty
 * windows are stored; `size` says how many windows the stretch covers.
 */
export class SlidingCounts {
  private readonly sorted: number[] = []

  /** Adds one non-empty window's count. */
  add(count: number): void {
    this.sorted.splice(this.insertionPoint(count), 0, count)
  }

  /** Removes one previously added count. */
  remove(count: number): void {
    const at = this.insertionPoint(count)
    if (this.sorted[at] === count) this.sorted.splice(at, 1)
  }

  /** Median over `size` windows, the ones not added being empty. */
  median(size: number): number {
    return medianWithZeros(this.sorted, Math.max(0, size - this.sorted.length))
  }

  /** Median and MAD over `size` windows. */
  baseline(size: number): Baseline {
    const zeros = Math.max(0, size - this.sorted.length)
    const median = medianWithZeros(this.sorted, zeros)
    return { median, mad: madWithZeros(this.sorted, zeros, median), size }
  }

  // First index whose value is >= count.
  private insertionPoint(count: number): number {
    let lo = 0
    let hi = this.sorted.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((this.sorted[mid] as number) < count) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}
