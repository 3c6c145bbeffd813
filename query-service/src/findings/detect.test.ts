import { describe, expect, it } from 'vitest'
import { burstEpisodes, burstTestLevels, differenceSpread, sustainedGrowth, thresholdEpisodes, weeklyAdjusted, type BurstRule, type DenseSeries } from './detect.js'
import { baselineOf, logPoissonUpperTail, madWithZeros, medianWithZeros } from './stats.js'

describe('robust baselines', () => {
  it('count empty windows without storing them', () => {
    expect(medianWithZeros([3, 5], 3)).toBe(0)
    expect(medianWithZeros([3, 5], 1)).toBe(3)
    expect(medianWithZeros([3, 5], 0)).toBe(4)
    expect(madWithZeros([1, 1, 2], 2, 1)).toBe(1)
    expect(baselineOf([])).toEqual({ median: 0, mad: 0, size: 0 })
  })

  it('are not moved by one outlier', () => {
    expect(baselineOf([10, 11, 9, 10, 10_000])).toEqual({ median: 10, mad: 1, size: 5 })
  })

})

describe('Poisson tails', () => {
  // Exact sums for small cases: P(X >= k) = 1 - sum_{i<k} e^-mu mu^i / i!
  const poissonUpperTail = (k: number, mu: number) => Math.exp(logPoissonUpperTail(k, mu))
  const exact = (k: number, mu: number) => 1 - Array.from({ length: k }, (_, i) => Math.exp(-mu) * mu ** i / [...Array(i).keys()].reduce((f, j) => f * (j + 1), 1)).reduce((a, b) => a + b, 0)

  it('match the exact sum where it can be computed, on both sides of the mean', () => {
    for (const [k, mu] of [[1, 0.5], [3, 0.1], [10, 2], [10, 10], [5, 20], [30, 25]] as const) expect(poissonUpperTail(k, mu)).toBeCloseTo(exact(k, mu), 12)
  })

  it('stay in logs far below the smallest double, and are 1 for nothing observed', () => {
    expect(logPoissonUpperTail(5000, 10) / Math.LN10).toBeLessThan(-300)
    expect(Number.isFinite(logPoissonUpperTail(5000, 10))).toBe(true)
    expect(poissonUpperTail(0, 3)).toBe(1)
    expect(poissonUpperTail(1, 0)).toBe(0)
    // A count far above a large mean: 10,500 where 10,000 are expected is about 5 standard deviations.
    expect(poissonUpperTail(10_500, 10_000)).toBeGreaterThan(1e-7)
    expect(poissonUpperTail(10_500, 10_000)).toBeLessThan(1e-6)
  })
})

const MINUTE = 60_000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR
const STEP = 5 * MINUTE
const WINDOWS = [5 * MINUTE, HOUR, 6 * HOUR]
// 14 days of history, then a 14-day range; default factor, floor and budget.
const START = Date.UTC(2026, 9, 1)
const RULE: BurstRule = {
  from: START + 14 * DAY,
  to: START + 28 * DAY,
  windows: WINDOWS,
  levels: burstTestLevels(WINDOWS, 0.01),
  baselineDays: 7,
  factor: 3,
  minEvents: 10,
  maxEpisodeMs: DAY,
  shiftFactor: 2,
}

/** A dense 5-minute series over the 28 days: `perSlot(ms)` events in the slot starting at ms. */
function series(perSlot: (ms: number) => number): DenseSeries {
  const counts = Array.from({ length: (28 * DAY) / STEP }, (_, i) => perSlot(START + i * STEP))
  return { startMs: START, stepMs: STEP, counts, firstEventMs: START }
}
// A quiet identity: one event every two hours.
const quiet = (ms: number) => (ms % (2 * HOUR) === 0 ? 1 : 0)
const within = (ms: number, from: number, length: number) => ms >= from && ms < from + length

describe('bursts', () => {
  it('are found for a quiet identity whose hour runs tens of times its usual rate', () => {
    const at = RULE.from + 3 * DAY + 10 * HOUR
    // 30 events in the hour instead of one every two hours.
    const episodes = burstEpisodes(series((ms) => quiet(ms) + (within(ms, at, HOUR) ? (ms % (10 * MINUTE) === 0 ? 5 : 0) : 0)), RULE)
    expect(episodes).toHaveLength(1)
    const [burst] = episodes
    // Its history expects the one event it makes at 10:00 every day.
    expect(burst).toMatchObject({ from: at, to: at + HOUR, events: 31, ongoing: false, window: { from: at, ms: HOUR, observed: 31, expected: 1 } })
    expect(Math.exp(burst!.window.logTail)).toBeLessThanOrEqual(RULE.levels[1]!)
  })

  it('are never 0 to 3: a window needs burst_min_events', () => {
    const at = RULE.from + 2 * DAY
    expect(burstEpisodes(series((ms) => (ms === at ? 3 : 0)), RULE)).toEqual([])
    expect(burstEpisodes(series((ms) => (ms === at ? 12 : 0)), { ...RULE })).toHaveLength(1)
  })

  it('are not a daily cron, a weekly job or the busy hours of a day', () => {
    const cron = (ms: number) => quiet(ms) + (ms % DAY === 3 * HOUR ? 40 : 0)
    const weekly = (ms: number) => quiet(ms) + ((ms - START) % (7 * DAY) === 2 * HOUR ? 200 : 0)
    const diurnal = (ms: number) => ((ms % DAY) / HOUR >= 9 && (ms % DAY) / HOUR < 17 ? 6 : ms % HOUR === 0 ? 1 : 0)
    for (const shape of [cron, weekly, diurnal]) expect(burstEpisodes(series(shape), RULE)).toEqual([])
  })

  it('are not a level shift: longer than sustained_growth_period, or still elevated the day after', () => {
    const shift = RULE.from + 4 * DAY
    expect(burstEpisodes(series((ms) => quiet(ms) + (ms >= shift && ms % (30 * MINUTE) === 0 ? 3 : 0)), RULE)).toEqual([])
  })

  it('are reported while the range ends inside them, marked ongoing', () => {
    const at = RULE.to - 20 * MINUTE
    const [burst, ...rest] = burstEpisodes(series((ms) => quiet(ms) + (ms >= at ? 20 : 0)), RULE)
    expect(rest).toEqual([])
    expect(burst).toMatchObject({ from: at, to: RULE.to, ongoing: true, events: 80 })
  })

  it('need three days of history before a window is judged', () => {
    const young = { ...series((ms) => (ms >= RULE.from - 2 * DAY ? quiet(ms) : 0) + (ms === RULE.from + 12 * HOUR ? 50 : 0)), firstEventMs: RULE.from - 2 * DAY }
    expect(burstEpisodes(young, RULE)).toEqual([])
  })

  it('share the false-alarm budget over window lengths and the windows of 30 days', () => {
    const [five, hour, six] = burstTestLevels(WINDOWS, 0.03)
    expect(five).toBeCloseTo(0.01 / 8640, 15)
    expect(hour).toBeCloseTo(0.01 / 720, 15)
    expect(six).toBeCloseTo(0.01 / 720, 15)
  })
})

describe('the weekly shape', () => {
  it('is taken out of daily periods, so quiet weekends are not a fall', () => {
    // Four weeks of 100 on weekdays and 20 at weekends, starting on a Monday.
    const monday = Date.UTC(2026, 9, 5)
    const week = [100, 100, 100, 100, 100, 20, 20]
    const series = [...week, ...week, ...week, ...week]
    const adjusted = weeklyAdjusted(series, 21, monday, DAY)
    expect(Math.max(...adjusted) / Math.min(...adjusted)).toBeLessThan(1.5)
    expect(weeklyAdjusted(series, 10, monday, DAY)).toEqual(series)
  })
})

describe('sustained growth', () => {
  const options = { periods: 7, factor: 2, minEvents: 100 }
  const noisy = (n: number, level: number) => Array.from({ length: n }, (_, i) => level + ((i * 7) % 5) - 2)

  it('is a level shift that holds in every recent period', () => {
    const growth = sustainedGrowth([...noisy(20, 100), ...noisy(7, 260)], options)
    expect(growth).toMatchObject({ baseline: { median: 100, size: 20 }, recent: noisy(7, 260) })
    expect(growth?.factor).toBeCloseTo(2.6)
  })

  it('is found when it began inside the baseline too: the spread comes from day-to-day differences, which one shift barely moves', () => {
    // 14 days at about 10, then 14 at about 30: the last 3 are recent, 11 of the 25 earlier ones already elevated.
    const low = [9, 11, 10, 12, 8, 10, 11, 9, 10, 12, 10, 9, 11, 10]
    const high = [29, 31, 30, 33, 28, 30, 32, 29, 31, 30, 28, 31, 30, 29]
    expect(differenceSpread([...low, ...high.slice(0, 11)])).toBeLessThan(3)
    expect(sustainedGrowth([...low, ...high], { periods: 3, factor: 2, minEvents: 20 })).toMatchObject({ recent: [31, 30, 29] })
  })

  it('is not a single busy period, nor a shift that fell back', () => {
    const spike = [...noisy(26, 100), 900]
    expect(sustainedGrowth(spike, options)).toBeNull()
    const fellBack = [...noisy(20, 100), ...noisy(6, 300), 100]
    expect(sustainedGrowth(fellBack, options)).toBeNull()
  })

  it('needs a baseline above zero, enough history and enough events', () => {
    expect(sustainedGrowth([...new Array(20).fill(0), ...noisy(7, 300)], options)).toBeNull()
    expect(sustainedGrowth([...noisy(6, 100), ...noisy(7, 300)], options)).toBeNull()
    expect(sustainedGrowth([...noisy(20, 20), ...noisy(7, 60)], options)).toBeNull()
  })
})

describe('threshold runs', () => {
  it('group consecutive windows at or over the threshold inside the range', () => {
    const counts = new Map([
      [1, 50],
      [5, 11],
      [6, 30],
      [7, 9],
      [8, 12],
    ])
    expect(thresholdEpisodes(counts, 2, 9, 10)).toEqual([
      { first: 5, last: 6, events: 41, peak: 30, windows: 2 },
      { first: 8, last: 8, events: 12, peak: 12, windows: 1 },
    ])
  })
})
