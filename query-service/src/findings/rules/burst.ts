/**
 * burst (FINDINGS.md, Kinds and Baselines): windows of burst_windows whose
 * events are improbable at burst_factor × what the series' own history
 * expects; screened on the digest's delivered counts, decided on exact
 * counts (detect.ts, burstEpisodes).
 */
import { formatDuration } from '../../policy/index.js'
import { burstEpisodes, burstTestLevels, mayBurst, type BurstEpisode } from '../detect.js'
import { burstScreen, type SeriesRow } from '../digest-reads.js'
import { windowCounts } from '../exact-reads.js'
import { finding, iso } from '../kinds.js'
import { DAY_MS, seriesKey, takeTurns } from '../reads.js'
import { plural, round, type Rule } from '../rule.js'

/** One medium finding per burst episode of an (identity, activity type) series. */
export const burstRule: Rule = async (ctx) => {
  const { profiles, from, to, request } = ctx
  const d = request.detection
  const windows = d.burst_windows.map((w) => w.ms)
  const baselineDays = Math.round(d.burst_baseline.ms / DAY_MS)
  const dayStart = Math.floor((from - d.burst_baseline.ms) / DAY_MS) * DAY_MS
  const rangeDayStart = Math.floor(from / DAY_MS) * DAY_MS
  // The false-alarm budget is per identity: shared among its activity types.
  const typesOf = new Map([...profiles.values()].map((p) => [p.id, Math.max(1, p.series.length)]))
  const levelsFor = (id: string) => burstTestLevels(windows, d.burst_false_alarms / (typesOf.get(id) ?? 1))

  // Screen on delivered counts: a window can fire only if its upper bound does against a lower bound
  // of its expected count (the level term, with a fifth of slack for re-deliveries).
  const screen = await burstScreen(ctx.client, { dayStart, rangeDayStart, to, windows }, request.scope)
  const firstRangeDay = Math.round((rangeDayStart - dayStart) / DAY_MS)
  const screenRule = { windows, baselineDays, factor: d.burst_factor, minEvents: d.burst_min_events }
  const seriesByKey = new Map([...profiles.values()].flatMap((p) => p.series.map((s) => [s.key, s] as const)))
  const candidates = screen.flatMap((row) => {
    const s = seriesByKey.get(row.key)
    return s && mayBurst({ ...row, firstRangeDay }, { ...screenRule, levels: levelsFor(s.nhiId) }) ? [s] : []
  })
  if (candidates.length === 0) return []

  const step = windows.reduce((a, b) => gcd(a, b))
  const counts = await windowCounts(
    ctx.client,
    { ids: [...new Set(candidates.map((s) => s.nhiId))], types: [...new Set(candidates.map((s) => s.activityType))], kind: 'by_type', windowMs: step, start: dayStart, to },
    request.scope,
  )
  const found: Array<{ s: SeriesRow; episode: BurstEpisode; level: number }> = []
  // One buffer for every series' counts (thousands of series would each allocate tens of kilobytes).
  const dense = new Float64Array(Math.ceil((to - dayStart) / step))
  const offset = dayStart / step
  let working = performance.now()
  for (const s of candidates) {
    const sparse = counts.get(seriesKey(s.nhiId, s.activityType))
    if (!sparse) continue
    // Thousands of series take seconds: the receiver and the API get their turns meanwhile.
    working = await takeTurns(working)
    dense.fill(0)
    for (const [k, n] of sparse) dense[k - offset] = n
    const levels = levelsFor(s.nhiId)
    const rule = { from, to, windows, levels, baselineDays, factor: d.burst_factor, minEvents: d.burst_min_events, maxEpisodeMs: d.sustained_growth_period.ms, shiftFactor: d.sustained_growth_factor }
    for (const episode of burstEpisodes({ startMs: dayStart, stepMs: step, counts: dense, firstEventMs: s.firstMs }, rule)) {
      found.push({ s, episode, level: levels[windows.indexOf(episode.window.ms)] as number })
    }
  }
  const samples = await ctx.sampleTraces(found.map(({ s, episode }) => ({ nhiId: s.nhiId, activityType: s.activityType, from: episode.from, to: episode.to })))
  return found.map(({ s, episode, level }, i) => {
    const w = episode.window
    const length = formatDuration(w.ms)
    const expected = round(w.expected, 2)
    return finding(
      'burst',
      s.nhiId,
      'medium',
      { from: episode.from, to: episode.to },
      `${s.nhiId} ran ${plural(w.observed, `${s.activityType} event`)} in the ${length} from ${iso(w.from)}, where ${expected} were expected (${w.expected > 0 ? `${round(w.observed / w.expected, 1)}×, ` : ''}chance ${formatProbability(w.logTail)} at ${d.burst_factor}× the expected rate)${episode.ongoing ? ', still going at the end of the range' : ''}`,
      {
        activity_type: s.activityType,
        window_length: length,
        window_from: iso(w.from),
        observed: w.observed,
        expected,
        tail_probability: Number(Math.exp(w.logTail).toPrecision(3)),
        log10_tail_probability: round(w.logTail / Math.LN10, 2),
        test_level: Number(level.toPrecision(3)),
        factor: d.burst_factor,
        events: episode.events,
        windows_fired: episode.windowsFired,
        ongoing: episode.ongoing,
        sample_trace_ids: samples[i] ?? [],
      },
    )
  })
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b)
}

/** A tail probability for a summary: "1 in 3.2e+9", or "below 1e-300" when it underflows. */
function formatProbability(logTail: number): string {
  const log10 = logTail / Math.LN10
  if (log10 < -300) return 'below 1e-300'
  return `1 in ${Number((1 / Math.exp(logTail)).toPrecision(2)).toExponential(1).replace('e+', 'e')}`
}
