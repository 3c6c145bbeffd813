/**
 * The time-series rules of FINDINGS.md as pure functions over exact counts:
 * bursts (short excursions that return to normal) against a robust rolling
 * baseline, sustained growth (a level shift that persists), and runs of
 * windows over a fixed threshold (overactive, auth_failures). Windows are
 * numbered from the Unix epoch (`floor(ms / windowMs)`), so the same data
 * always falls into the same windows.
 */
import { baselineOf, logPoissonUpperTail, MAD_TO_SPREAD, type Baseline } from './stats.js'

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

/**
 * The counts of one (identity, activity type) series at a fine resolution,
 * dense over the look-back: `counts[i]` is the exact number of events in
 * `[startMs + i × stepMs, startMs + (i + 1) × stepMs)`.
 */
export interface DenseSeries {
  startMs: number
  stepMs: number
  counts: ArrayLike<number>
  /** The series' first event (epoch ms; at or before the look-back when it is older). */
  firstEventMs: number
}

/** What {@link burstEpisodes} needs to know about the range and the policy. */
export interface BurstRule {
  /** The range judged: windows that start in [from, to). */
  from: number
  to: number
  /** Window lengths (ms, multiples of the series' step): shorter than an hour they hop by their length, an hour or more they hop by an hour. */
  windows: readonly number[]
  /** Per window length, the false-alarm probability allowed to one window (the budget shared out; {@link burstTestLevels}). */
  levels: readonly number[]
  /** Days of history the expected count is learnt from (burst_baseline in whole days, at most 7 used for the daily median). */
  baselineDays: number
  /** burst_factor: the rate must be shown to exceed this many times the expected one. */
  factor: number
  /** burst_min_events: a window below this never fires (0 to 3 is never a burst). */
  minEvents: number
  /** Longest episode still called a burst (sustained_growth_period); longer ones are level shifts. */
  maxEpisodeMs: number
  /** sustained_growth_factor: when the day after an episode still runs at this many times its usual level, the episode began a level shift. */
  shiftFactor: number
}

/** A burst: windows whose counts are improbable under the identity's own expected rate. */
export interface BurstEpisode {
  /** The union of the windows of the shortest length that fired (clipped to the range end). */
  from: number
  to: number
  /** Exact events in [from, to). */
  events: number
  /** The most improbable window: its start, length, observed and expected counts and tail probability (natural log). */
  window: { from: number; ms: number; observed: number; expected: number; logTail: number }
  /** How many windows fired (all lengths). */
  windowsFired: number
  /** True when the episode reaches the end of the range. */
  ongoing: boolean
}

const DAY = 86_400_000
const HOUR = 3_600_000
/** A series needs this many days of history before its windows are judged. */
export const BURST_MIN_HISTORY_DAYS = 3
/** The share of its part of the median day a window is expected to hold at least. */
const LEVEL_SHARE = 0.5
/** The daily median looks back at most this many days. */
const MAX_DAILY_REFERENCES = 7

/** The hop of a burst window: its own length below an hour, one hour above. */
export function burstHop(windowMs: number): number {
  return Math.min(windowMs, HOUR)
}

/**
 * Shares a false-alarm budget (expected false bursts per identity, activity
 * type and 30 days of steady behaviour) over the window lengths and the
 * windows tested in 30 days: a Bonferroni split, conservative because
 * overlapping windows are not independent.
 */
export function burstTestLevels(windows: readonly number[], budget: number): number[] {
  return windows.map((w) => budget / windows.length / ((30 * DAY) / burstHop(w)))
}

function median(values: number[]): number {
  if (values.length === 0) return 0
  values.sort((a, b) => a - b)
  const mid = values.length >> 1
  return values.length % 2 === 1 ? (values[mid] as number) : ((values[mid - 1] as number) + (values[mid] as number)) / 2
}

/**
 * The expected count of a window of `lengthMs` starting at `t`, from the
 * series' own history (FINDINGS.md, "burst"): the largest of
 * - the median of the same window on each of the previous days (a daily
 *   cron or the busy hours of the day are expected),
 * - the same window one week earlier (a weekly job or a Monday peak),
 * - half the window's share of the median UTC day of the previous days (a
 *   floor for quiet series whose daily median is mostly zeros; half, so the
 *   quiet hours of a busy day are not expected to be average).
 * Null when the series has fewer than BURST_MIN_HISTORY_DAYS days of history.
 */
export function expectedCount(sum: (fromMs: number, toMs: number) => number, historyStart: number, t: number, lengthMs: number, baselineDays: number): number | null {
  const days = Math.min(baselineDays, Math.floor((t - historyStart) / DAY))
  if (days < BURST_MIN_HISTORY_DAYS) return null
  const today = Math.floor(t / DAY) * DAY
  const daily: number[] = []
  const level: number[] = []
  for (let k = 1; k <= Math.min(days, MAX_DAILY_REFERENCES); k++) {
    daily.push(sum(t - k * DAY, t - k * DAY + lengthMs))
    level.push(sum(today - k * DAY, today - (k - 1) * DAY))
  }
  const weekly = days >= 7 ? sum(t - 7 * DAY, t - 7 * DAY + lengthMs) : 0
  return Math.max(median(daily), weekly, (LEVEL_SHARE * median(level) * lengthMs) / DAY)
}

/**
 * The lowest plausible count of the day starting at `t`: the same 24 hours
 * a week earlier when the history reaches that far (a quiet Saturday is
 * compared with last Saturday), else the median of the previous days. Used
 * to tell whether activity stayed elevated after a burst.
 */
function usualDay(sum: (fromMs: number, toMs: number) => number, historyStart: number, t: number, baselineDays: number): number {
  const days = Math.min(baselineDays, Math.floor((t - historyStart) / DAY))
  const daily: number[] = []
  for (let k = 1; k <= Math.min(days, MAX_DAILY_REFERENCES); k++) daily.push(sum(t - k * DAY, t - (k - 1) * DAY))
  return days >= 7 ? Math.min(median(daily), sum(t - 7 * DAY, t - 6 * DAY)) : median(daily)
}

/**
 * Finds bursts in one series. Each window of each length that starts in the
 * range is tested: it fires when it holds at least `minEvents` events and
 * the probability of at least that many under a Poisson rate of `factor` ×
 * its expected count ({@link expectedCount}) is at most the window's level.
 * Fired windows that overlap or lie within the longest window of each other
 * form one episode, reported by its most improbable window. An episode
 * longer than `maxEpisodeMs`, or followed by a day still at `shiftFactor` ×
 * the usual level, is a level shift (sustained growth), not a burst.
 */
export function burstEpisodes(series: DenseSeries, rule: BurstRule): BurstEpisode[] {
  const { startMs, stepMs, counts } = series
  const n = counts.length
  const prefix = new Float64Array(n + 1)
  for (let i = 0; i < n; i++) prefix[i + 1] = (prefix[i] as number) + (counts[i] as number)
  const index = (ms: number) => Math.min(n, Math.max(0, Math.floor((ms - startMs) / stepMs)))
  const sum = (fromMs: number, toMs: number) => (prefix[index(toMs)] as number) - (prefix[index(fromMs)] as number)
  const historyStart = Math.max(startMs, Math.floor(series.firstEventMs / DAY) * DAY)

  interface Fired {
    from: number
    to: number
    ms: number
    observed: number
    expected: number
    logTail: number
  }
  const fired: Fired[] = []
  rule.windows.forEach((lengthMs, w) => {
    const hop = burstHop(lengthMs)
    const logLevel = Math.log(rule.levels[w] as number)
    for (let t = Math.ceil(rule.from / hop) * hop; t < rule.to; t += hop) {
      const observed = sum(t, Math.min(t + lengthMs, rule.to))
      if (observed < rule.minEvents) continue
      const expected = expectedCount(sum, historyStart, t, lengthMs, rule.baselineDays)
      if (expected === null) continue
      const logTail = logPoissonUpperTail(observed, rule.factor * expected)
      if (logTail <= logLevel) fired.push({ from: t, to: Math.min(t + lengthMs, rule.to), ms: lengthMs, observed, expected, logTail })
    }
  })
  if (fired.length === 0) return []
  fired.sort((a, b) => a.from - b.from || a.to - b.to)

  // Windows that overlap or lie within the longest window of each other are one episode.
  const gap = Math.max(...rule.windows)
  const groups: Fired[][] = []
  let end = -Infinity
  for (const f of fired) {
    if (groups.length === 0 || f.from > end + gap) groups.push([])
    groups[groups.length - 1]!.push(f)
    end = Math.max(end, f.to)
  }

  const episodes: BurstEpisode[] = []
  for (const group of groups) {
    const from = group[0]!.from
    const to = Math.max(...group.map((f) => f.to))
    if (to - from > rule.maxEpisodeMs) continue
    if (rule.to - to >= HOUR) {
      // A burst returns to normal: the day after it (or what the range holds of it) is not still elevated.
      const afterEnd = Math.min(to + DAY, rule.to)
      const usual = (usualDay(sum, historyStart, to, rule.baselineDays) * (afterEnd - to)) / DAY
      const after = sum(to, afterEnd)
      if (after >= rule.minEvents && after >= rule.shiftFactor * usual) continue
    }
    const best = group.reduce((a, b) => (b.logTail < a.logTail ? b : a))
    // The finding's window is the tightest the evidence allows: the windows of the shortest length that fired.
    const shortest = Math.min(...group.map((f) => f.ms))
    const core = group.filter((f) => f.ms === shortest)
    const coreFrom = core[0]!.from
    const coreTo = Math.max(...core.map((f) => f.to))
    episodes.push({
      from: coreFrom,
      to: coreTo,
      events: sum(coreFrom, coreTo),
      window: { from: best.from, ms: best.ms, observed: best.observed, expected: best.expected, logTail: best.logTail },
      windowsFired: group.length,
      ongoing: to >= rule.to,
    })
  }
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
 * The spread of a series' noise from its period-to-period differences:
 * MAD of the differences × 1.4826 / √2. A level shift inside the series is
 * one large difference among many small ones, so it barely moves this,
 * where it would widen the MAD of the values themselves.
 */
export function differenceSpread(series: readonly number[]): number {
  if (series.length < 3) return MAD_TO_SPREAD * baselineOf(series).mad
  const differences = series.slice(1).map((v, i) => v - (series[i] as number))
  return (MAD_TO_SPREAD * baselineOf(differences).mad) / Math.SQRT2
}

/**
 * Decides whether the last `periods` complete periods of a series are a
 * level shift that persists: the earlier periods are the baseline (median
 * m, which must be above zero, so a series that is new is not growth;
 * spread s from the period-to-period differences, {@link differenceSpread},
 * so growth that began inside the baseline does not hide itself); every
 * recent period is above m and at least m + 3s; the median of the recent
 * periods is at least `factor` × m; and the latest period has at least
 * `minEvents`. A one-off burst lifts one or two periods and never all of
 * them.
 */
export function sustainedGrowth(series: readonly number[], options: GrowthOptions): Growth | null {
  if (series.length < 2 * options.periods) return null
  const recent = series.slice(-options.periods)
  const earlier = series.slice(0, -options.periods)
  const baseline = baselineOf(earlier)
  const m = baseline.median
  if (m <= 0) return null
  const floor = m + GROWTH_BAND_SPREADS * differenceSpread(earlier)
  if (!recent.every((c) => c > m && c >= floor)) return null
  const recentMedian = baselineOf(recent).median
  if (recentMedian < options.factor * m) return null
  if ((recent[recent.length - 1] as number) < options.minEvents) return null
  return { baseline, recent, factor: recentMedian / m }
}

/** Weight, in periods, of the flat shape each weekday's mean is shrunk towards. */
const SHAPE_PRIOR = 0.25

/**
 * A series of periods with the week's shape taken out, so that quiet
 * weekends are not read as a fall and busy Mondays as growth: each period
 * is divided by the ratio of its weekday's mean to the overall mean in the
 * first `baselineCount` periods (shrunk towards 1 by a quarter period's worth,
 * so one odd week moves it less).
 * Unchanged when a week is not a whole number of periods, or the baseline
 * holds fewer than two weeks or no events.
 */
export function weeklyAdjusted(series: readonly number[], baselineCount: number, originMs: number, periodMs: number): number[] {
  const cycle = (7 * DAY) / periodMs
  if (!Number.isInteger(cycle) || cycle < 2 || baselineCount < 2 * cycle) return [...series]
  const baseline = series.slice(0, baselineCount)
  const mean = baseline.reduce((a, b) => a + b, 0) / baseline.length
  if (mean <= 0) return [...series]
  const position = (i: number) => (((Math.round(originMs / periodMs) + i) % cycle) + cycle) % cycle
  const sums = new Array<number>(cycle).fill(0)
  const seen = new Array<number>(cycle).fill(0)
  baseline.forEach((value, i) => {
    sums[position(i)]! += value
    seen[position(i)]! += 1
  })
  const shape = sums.map((s, p) => (s + SHAPE_PRIOR * mean) / ((seen[p] as number) + SHAPE_PRIOR) / mean)
  return series.map((value, i) => value / (shape[position(i)] as number))
}

/** One series as the burst screen sees it: delivered events per day of the look-back and, per window length, per day of the range, the most in one window. */
export interface ScreenedSeries {
  days: readonly number[]
  maxima: readonly (readonly number[])[]
  /** Index in `days` of the range's first day. */
  firstRangeDay: number
}

/**
 * Whether a series could hold a burst, from upper bounds of its window
 * counts (delivered events) against a lower bound of each window's expected
 * count: the level term of {@link expectedCount} (the median day of the
 * previous days), with a fifth of slack for re-delivered spans. Series that
 * fail it are never read again.
 */
export function mayBurst(series: ScreenedSeries, rule: Pick<BurstRule, 'windows' | 'levels' | 'baselineDays' | 'factor' | 'minEvents'>): boolean {
  // As in burstEpisodes: history starts on the first day with events, and a window needs BURST_MIN_HISTORY_DAYS of it.
  const firstDay = series.days.findIndex((n) => n > 0)
  if (firstDay < 0) return false
  const levels = new Map<number, number>()
  const levelOf = (index: number) => {
    let level = levels.get(index)
    if (level === undefined) {
      level = median(series.days.slice(Math.max(firstDay, index - Math.min(MAX_DAILY_REFERENCES, rule.baselineDays)), index))
      levels.set(index, level)
    }
    return level
  }
  return series.maxima.some((perDay, w) => {
    const logLevel = Math.log(rule.levels[w] as number)
    const share = (0.8 * LEVEL_SHARE * (rule.windows[w] as number)) / DAY
    return perDay.some((observed, day) => {
      const index = series.firstRangeDay + day
      if (observed < rule.minEvents || index - firstDay < BURST_MIN_HISTORY_DAYS) return false
      return logPoissonUpperTail(observed, rule.factor * share * levelOf(index)) <= logLevel
    })
  })
}

/** The chance, at its current rate, that a name new in the range would have been missing from the whole baseline stretch. */
export const DRIFT_ABSENCE_PROBABILITY = 0.001

/**
 * privilege_drift (b) for a new name of an activity type the identity
 * already used: at least `minEvents` events in the range, at a rate (since
 * the name was first seen) at which its absence from the baseline stretch
 * would have had a chance of at most DRIFT_ABSENCE_PROBABILITY. A route
 * used a few times a month that happened to skip the last week is not drift.
 */
export function newNameIsDrift(events: number, firstSeenMs: number, toMs: number, baselineMs: number, minEvents: number): boolean {
  if (events < minEvents) return false
  const rate = events / Math.max(DAY, toMs - firstSeenMs)
  return Math.exp(-rate * baselineMs) <= DRIFT_ABSENCE_PROBABILITY
}

/** How long an identity must be silent to be dormant: dormant_after, or earlier when the silence is unusual for it (FINDINGS.md). */
export function dormancyThreshold(longestEarlierSilenceMs: number | undefined, settings: { afterMs: number; earlyAfterMs: number; gapFactor: number }): number {
  if (longestEarlierSilenceMs === undefined) return settings.afterMs
  return Math.min(settings.afterMs, Math.max(settings.earlyAfterMs, settings.gapFactor * longestEarlierSilenceMs))
}
