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

// ---- Poisson tail probabilities (FINDINGS.md, "burst")

// Lanczos approximation (g = 7, n = 9) of ln Γ(x) for x > 0; relative error below 1e-13.
const LANCZOS = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7]

/** ln Γ(x) for x > 0. */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x)
  const z = x - 1
  let sum = LANCZOS[0] as number
  for (let i = 1; i < LANCZOS.length; i++) sum += (LANCZOS[i] as number) / (z + i)
  const t = z + 7.5
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum)
}

/**
 * ln P(X >= k) for X ~ Poisson(mu): the natural log of the upper-tail
 * probability of observing at least `k` events when `mu` are expected.
 * P(X >= k) is the regularised lower incomplete gamma function P(k, mu),
 * summed as a series when mu < k + 1 (the tail a burst test asks about,
 * accurate far below 1e-300 because it stays in logs) and through the
 * continued fraction of its complement otherwise.
 */
export function logPoissonUpperTail(k: number, mu: number): number {
  if (k <= 0) return 0
  if (mu <= 0) return -Infinity
  const logPrefix = k * Math.log(mu) - mu - logGamma(k)
  if (mu < k + 1) {
    // P(k, mu) = mu^k e^-mu / Γ(k) × Σ_n mu^n / (k (k+1) ... (k+n))
    let term = 1 / k
    let sum = term
    for (let n = 1; n < 100_000; n++) {
      term *= mu / (k + n)
      sum += term
      if (term < sum * 1e-15) break
    }
    return logPrefix + Math.log(sum)
  }
  // Q(k, mu) by Lentz's continued fraction; P = 1 - Q.
  const tiny = 1e-300
  let b = mu + 1 - k
  let c = 1 / tiny
  let d = 1 / b
  let h = d
  for (let i = 1; i < 100_000; i++) {
    const an = -i * (i - k)
    b += 2
    d = an * d + b
    if (Math.abs(d) < tiny) d = tiny
    c = b + an / c
    if (Math.abs(c) < tiny) c = tiny
    d = 1 / d
    const delta = d * c
    h *= delta
    if (Math.abs(delta - 1) < 1e-15) break
  }
  const q = Math.exp(logPrefix) * h
  return Math.log1p(-Math.min(q, 1))
}
