import { describe, expect, it } from 'vitest'
import { burstEpisodes, sustainedGrowth, thresholdEpisodes, type BurstOptions } from './detect.js'
import { baselineOf, madWithZeros, medianWithZeros, SlidingCounts } from './stats.js'

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

  it('follow a sliding stretch as windows enter and leave', () => {
    const sliding = new SlidingCounts()
    for (const c of [5, 1, 3]) sliding.add(c)
    expect(sliding.median(3)).toBe(3)
    sliding.remove(5)
    expect(sliding.baseline(4)).toEqual({ median: 0.5, mad: 0.5, size: 4 })
  })
})

// Hourly windows, a week of baseline, at most one day per burst.
const HOURS: Omit<BurstOptions, 'rangeFirst' | 'rangeEnd'> = { firstIndex: 0, baselineWindows: 168, factor: 10, minEvents: 20, maxWindows: 24 }

function steady(hours: number, perHour: (h: number) => number): Map<number, number> {
  const counts = new Map<number, number>()
  for (let h = 0; h < hours; h++) if (perHour(h) > 0) counts.set(h, perHour(h))
  return counts
}

describe('bursts', () => {
  it('are short excursions far above the baseline that return to normal', () => {
    const counts = steady(400, (h) => 3 + (h % 3))
    counts.set(250, 400)
    counts.set(251, 90)
    const [burst, ...rest] = burstEpisodes(counts, { ...HOURS, rangeFirst: 168, rangeEnd: 400 })
    expect(rest).toEqual([])
    expect(burst).toMatchObject({ first: 250, last: 251, events: 490, peak: 400, windows: 2, ongoing: false, baseline: { median: 4, mad: 1, size: 168 } })
    // max(burst_min_events 20, 10 × median 4, median + 10 × spread 1.4826)
    expect(burst?.threshold).toBe(40)
  })

  it('are not reported for a level shift that persists longer than the longest burst', () => {
    const counts = steady(400, (h) => (h < 300 ? 4 : 200))
    expect(burstEpisodes(counts, { ...HOURS, rangeFirst: 168, rangeEnd: 400 })).toEqual([])
  })

  it('are still reported while the range ends inside them, marked ongoing', () => {
    const counts = steady(400, (h) => (h < 395 ? 4 : 200))
    expect(burstEpisodes(counts, { ...HOURS, rangeFirst: 168, rangeEnd: 400 })).toMatchObject([{ first: 395, last: 399, ongoing: true }])
  })

  it('need burst_min_events even when the baseline is empty', () => {
    const counts = new Map([[200, 19]])
    expect(burstEpisodes(counts, { ...HOURS, rangeFirst: 168, rangeEnd: 400 })).toEqual([])
    counts.set(200, 20)
    expect(burstEpisodes(counts, { ...HOURS, rangeFirst: 168, rangeEnd: 400 })).toHaveLength(1)
  })

  it('are judged against the spread of a noisy series, not only its median', () => {
    // Alternating quiet and busy hours: median 10, MAD 10, so 120 is not a burst.
    const counts = steady(400, (h) => (h % 2 === 0 ? 20 : 1))
    counts.set(300, 120)
    expect(burstEpisodes(counts, { ...HOURS, rangeFirst: 168, rangeEnd: 400 })).toEqual([])
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
