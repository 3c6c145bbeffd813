/**
 * sustained_growth (FINDINGS.md, Kinds and Baselines): the last
 * sustained_growth_periods complete periods of a series all stay well
 * above its baseline, with the week's shape taken out (detect.ts,
 * sustainedGrowth); screened on delivered counts, decided on exact ones.
 */
import { growthCandidate, sustainedGrowth, weeklyAdjusted } from '../detect.js'
import type { SeriesRow } from '../digest-reads.js'
import { exactPeriods } from '../exact-reads.js'
import { finding, iso } from '../kinds.js'
import { HOUR_MS, seriesKey } from '../reads.js'
import { plural, round, type Rule } from '../rule.js'

/** One low finding per (identity, activity type) series whose recent periods hold a level shift. */
export const sustainedGrowthRule: Rule = async (ctx) => {
  const { profiles, request, period, recentStart, recentEnd } = ctx
  const d = request.detection
  const options = { periods: d.sustained_growth_periods, factor: d.sustained_growth_factor, minEvents: d.sustained_growth_min_events }
  // Delivered counts choose the candidates; the decision is made on exact counts.
  // Periods that are not whole hours cannot be screened from the hourly digest: every series is a candidate.
  const screened = period.ms % HOUR_MS === 0
  // The week's shape is taken out first (detect.ts, weeklyAdjusted), so quiet weekends and busy Mondays are neither growth nor its absence.
  const adjusted = (series: readonly number[]) => weeklyAdjusted(series, series.length - options.periods, period.origin, period.ms)
  const candidates = [...profiles.values()].flatMap((p) => p.series.filter((s) => (screened ? growthCandidate(adjusted(s.periods), options) : s.delivered > 0)))
  const exact = await exactPeriods(ctx.client, candidates, period, request.scope)
  const found: Array<{ s: SeriesRow; g: NonNullable<ReturnType<typeof sustainedGrowth>>; raw: number[] }> = []
  for (const s of candidates) {
    const raw = exact.get(seriesKey(s.nhiId, s.activityType)) ?? []
    const g = sustainedGrowth(adjusted(raw), options)
    if (g && (raw[raw.length - 1] ?? 0) >= options.minEvents) found.push({ s, g, raw })
  }
  const samples = await ctx.sampleTraces(found.map(({ s }) => ({ nhiId: s.nhiId, activityType: s.activityType, from: recentStart, to: recentEnd })))
  const text = d.sustained_growth_period.text
  return found.map(({ s, g, raw }, i) =>
    finding(
      'sustained_growth',
      s.nhiId,
      'low',
      { from: recentStart, to: recentEnd },
      `${s.nhiId}'s ${s.activityType} activity has stayed at ${round(g.factor, 2)}× its usual ${round(g.baseline.median, 1)} per ${text} for the last ${plural(g.recent.length, 'period')}`,
      {
        activity_type: s.activityType,
        period: text,
        recent: raw.slice(-g.recent.length).map((events, k) => ({ from: iso(recentStart + k * period.ms), events })),
        baseline: { median: round(g.baseline.median, 2), mad: round(g.baseline.mad, 2), periods: g.baseline.size, weekly_adjusted: adjusted(raw).some((v, k) => v !== raw[k]) },
        growth_factor: round(g.factor, 2),
        sample_trace_ids: samples[i] ?? [],
      },
    ),
  )
}
