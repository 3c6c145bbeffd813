/**
 * overactive (FINDINGS.md, Kinds): more than overactive_max_events events
 * (all activity types) by one identity in one overactive_window;
 * consecutive such windows are one finding.
 */
import { finding } from '../kinds.js'
import { windowBound, type Rule } from '../rule.js'
import { thresholdRuns } from '../threshold-runs.js'

/** One finding per run of windows over the maximum: high above twice it. */
export const overactiveRule: Rule = async (ctx) => {
  const d = ctx.request.detection
  const window = d.overactive_window
  // Only identities whose busiest hours could add up to more than the maximum in one window are counted exactly.
  const ids = [...ctx.profiles.values()].filter((p) => p.series.reduce((sum, s) => sum + windowBound(s.maxHour, window.ms), 0) > d.overactive_max_events).map((p) => p.id)
  const runs = await thresholdRuns(ctx, { window, threshold: d.overactive_max_events + 1, ids, countKind: 'all', sample: (id, w) => ({ nhiId: id, ...w }) })
  return runs.map(({ id, episode: e, window: w, sampleTraceIds }) =>
    finding('overactive', id, e.peak > 2 * d.overactive_max_events ? 'high' : 'medium', w, `${id} ran ${e.peak} events in one ${window.text} window, over the policy's ${d.overactive_max_events}`, {
      peak_window_events: e.peak,
      windows_over: e.windows,
      events: e.events,
      max_events: d.overactive_max_events,
      overactive_window: window.text,
      sample_trace_ids: sampleTraceIds,
    }),
  )
}
