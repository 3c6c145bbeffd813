/**
 * auth_failures (FINDINGS.md, Kinds): at least auth_failures_min_count
 * failed token_exchange spans by one identity in one auth_failures_window;
 * consecutive such windows are one finding.
 */
import { finding } from '../kinds.js'
import { plural, windowBound, type Rule } from '../rule.js'
import { thresholdRuns } from '../threshold-runs.js'

/** One finding per run of windows at the minimum: high at ten times it. */
export const authFailuresRule: Rule = async (ctx) => {
  const d = ctx.request.detection
  const window = d.auth_failures_window
  // Only identities whose busiest hours of failed exchanges could reach the minimum in one window are counted exactly.
  const ids = [...ctx.profiles.values()].filter((p) => p.series.some((s) => s.activityType === 'token_exchange' && windowBound(s.maxFailedHour, window.ms) >= d.auth_failures_min_count)).map((p) => p.id)
  const runs = await thresholdRuns(ctx, {
    window,
    threshold: d.auth_failures_min_count,
    ids,
    countKind: 'failed_token_exchange',
    sample: (id, w) => ({ nhiId: id, ...w, activityType: 'token_exchange', failedOnly: true }),
  })
  return runs.map(({ id, episode: e, window: w, sampleTraceIds }) =>
    finding('auth_failures', id, e.peak >= 10 * d.auth_failures_min_count ? 'high' : 'medium', w, `${id} had ${plural(e.peak, 'failed token exchange')} in one ${window.text} window (policy: ${d.auth_failures_min_count})`, {
      peak_window_failures: e.peak,
      windows_over: e.windows,
      failures: e.events,
      min_count: d.auth_failures_min_count,
      auth_failures_window: window.text,
      sample_trace_ids: sampleTraceIds,
    }),
  )
}
