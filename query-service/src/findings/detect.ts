/**
 * The time-series rules of FINDINGS.md as pure functions over exact counts:
 * bursts (short excursions that return to normal) against a robust rolling
 * baseline, sustained growth (a level shift that persists), and runs of
 * windows over a fixed threshold (overactive, auth_failures). Windows are
 * numbered from the Unix epoch (`floor(ms / windowMs)`), so the same data
 * always falls into the same windows.
 */
import { baselineOf, MAD_TO_SPREAD, SlidingCounts, type Baseline } from './stats.js'

/** Counts of the non-empty windows of one series, by window index. */
export type WindowCounts = ReadonlyMap<number, number>

/** A run of windows flagged by a rule. */
export interface Episode {
  /** Index of the first window. */
  first: number
  /** Index of the last window (inclusive). */
  last: number
  /** Events in all windows of the run. */
  events: number
  /** Events in the busiest window. */
  peak: number
  /** How many windows the run spans. */
  windows: number
}

/** A burst: an episode measured against the baseline that preceded it. */
export interface BurstEpisode extends Episode {
  /** Median and MAD of the counts per window over the baseline stretch before the episode. */
  baseline: Baseline
  /** The count a window needed to be part of the burst. */
  threshold: number
  /** True when the range ends before the activity was seen to return to normal. */
  ongoing: boolean
}

/** What {@link burstEpisodes} needs to know about the series and the policy. */
export interface BurstOptions {
  /** Index of the first window with data (the start of the look-back). */
  firstIndex: number
  /** First window of the range judged. */
  rangeFirst: number
  /** One past the last window of the range judged. */
  rangeEnd: number
  /** Windows in the baseline stretch (burst_baseline / burst_window). */
  baselineWindows: number
  /** burst_factor. */
  factor: number
  /** burst_min_events. */
  minEvents: number
  /** Longest run still called a burst (sustained_growth_period / burst_window); longer runs are level shifts. */
  maxWindows: number
}

/**
 * Finds bursts in one series. A window is bursty when its count is at least
 * `minEvents`, at least `factor` × the baseline median, and at least the
 * median plus `factor` × the robust spread (MAD × 1.4826), the baseline
 * being the counts of every window (empty ones included) in the stretch of
 * `baselineWindows` before it. Bursty windows at most one window apart form
 * a run, judged against the baseline before its first window. A run longer
 * than `maxWindows` is a level shift, not a burst, and is not reported.
 */
export function burstEpisodes(counts: WindowCounts, options: BurstOptions): BurstEpisode[] {
  const indices = [...counts.keys()].sort((a, b) => a - b)
  const sliding = new SlidingCounts()
  let added = 0
  let removed = 0
  // Slides the stretch [k - baselineWindows, k) forward; k only grows.
  const stretchSize = (k: number): number => {
    const start = Math.max(options.firstIndex, k - options.baselineWindows)
    while (added < indices.length && (indices[added] as number) < k) sliding.add(counts.get(indices[added++] as number) as number)
    while (removed < added && (indices[removed] as number) < start) sliding.remove(counts.get(indices[removed++] as number) as number)
    return Math.max(0, k - start)
  }

  const episodes: BurstEpisode[] = []
  let open: { first: number; last: number; baseline: Baseline; threshold: number } | undefined
  const close = () => {
    if (!open) return
    const windows = open.last - open.first + 1
    if (windows <= options.maxWindows) {
      episodes.push({ ...runTotals(counts, indices, open.first, open.last), baseline: open.baseline, threshold: open.threshold, ongoing: open.last >= options.rangeEnd - 1 })
    }
    open = undefined
  }

  for (const k of indices) {
    if (k < options.rangeFirst || k >= options.rangeEnd) continue
    const count = counts.get(k) as number
    if (count < options.minEvents) continue
    if (open && k <= open.last + 2 && count >= open.threshold) {
      open.last = k
      continue
    }
    close()
    const size = stretchSize(k)
    const median = sliding.median(size)
    if (count < options.factor * median) continue
    const baseline = sliding.baseline(size)
    const threshold = Math.max(options.minEvents, options.factor * baseline.median, baseline.median + options.factor * MAD_TO_SPREAD * baseline.mad)
    if (count >= threshold) open = { first: k, last: k, baseline, threshold }
  }
  close()
  return episodes
}

/** Runs of consecutive windows in [rangeFirst, rangeEnd) whose count is at least `threshold`. */
export function thresholdEpisodes(counts: WindowCounts, rangeFirst: number, rangeEnd: number, threshold: number): Episode[] {
  const indices = [...counts.keys()].filter((k) => k >= rangeFirst && k < rangeEnd && (counts.get(k) as number) >= threshold).sort((a, b) => a - b)
  const episodes: Episode[] = []
  let start = 0
  for (let i = 1; i <= indices.length; i++) {
    if (i < indices.length && (indices[i] as number) === (indices[i - 1] as number) + 1) continue
    if (indices.length > 0) episodes.push(runTotals(counts, indices, indices[start] as number, indices[i - 1] as number))
    start = i
  }
  return episodes
}

function runTotals(counts: WindowCounts, sortedIndices: readonly number[], first: number, last: number): Episode {
  let events = 0
  let peak = 0
  for (const k of sortedIndices) {
    if (k < first || k > last) continue
    const count = counts.get(k) as number
    events += count
    peak = Math.max(peak, count)
  }
  return { first, last, events, peak, windows: last - first + 1 }
}

/** A persisting level shift in one series. */
export interface Growth {
  /** Median and MAD of the baseline periods. */
  baseline: Baseline
  /** Counts of the recent periods, oldest first. */
  recent: number[]
  /** Median of the recent periods over the baseline median. */
  factor: number
}

/** Settings of {@link sustainedGrowth}. */
export interface GrowthOptions {
  /** sustained_growth_periods: how many recent periods must all be elevated. */
  periods: number
  /** sustained_growth_factor. */
  factor: number
  /** sustained_growth_min_events: the latest period has at least this many events. */
  minEvents: number
}

/**
 * Whether a series of *delivered* counts (an upper bound of distinct spans)
 * could be sustained growth once counted exactly: the rule with a fifth of
 * slack on the factor and the event minimum and no band, so re-deliveries
 * that inflate the baseline more than the recent periods (by up to 25 %)
 * cannot hide growth. Candidates are then judged by {@link sustainedGrowth}
 * on exact counts.
 */
export function growthCandidate(delivered: readonly number[], options: GrowthOptions): boolean {
  if (delivered.length < 2 * options.periods) return false
  const recent = delivered.slice(-options.periods)
  const m = baselineOf(delivered.slice(0, -options.periods)).median
  return m > 0 && recent.every((c) => c > 0.8 * m) && baselineOf(recent).median >= 0.8 * options.factor * m && (recent[recent.length - 1] as number) >= 0.8 * options.minEvents
}

/** How far above the baseline median, in robust spreads, every recent period must stay. */
export const GROWTH_BAND_SPREADS = 3

/**
 * Decides whether the last `periods` complete periods of a series are a
 * level shift that persists: the earlier periods are the baseline (median
 * m, spread s = MAD × 1.4826; m must be above zero, so a series that is new
 * is not growth); every recent period is above m and at least m + 3s; the
 * median of the recent periods is at least `factor` × m; and the latest
 * period has at least `minEvents`. A one-off burst lifts one or two periods
 * and never all of them.
 */
export function sustainedGrowth(series: readonly number[], options: GrowthOptions): Growth | null {
  if (series.length < 2 * options.periods) return null
  const recent = series.slice(-options.periods)
  const baseline = baselineOf(series.slice(0, -options.periods))
  const m = baseline.median
  if (m <= 0) return null
  const floor = m + GROWTH_BAND_SPREADS * MAD_TO_SPREAD * baseline.mad
  if (!recent.every((c) => c > m && c >= floor)) return null
  const recentMedian = baselineOf(recent).median
  if (recentMedian < options.factor * m) return null
  if ((recent[recent.length - 1] as number) < options.minEvents) return null
  return { baseline, recent, factor: recentMedian / m }
}
