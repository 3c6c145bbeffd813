/**
 * Runs of consecutive epoch-aligned windows whose exact count reaches a
 * fixed threshold, with each run's window clipped to the range and its
 * sample trace ids: what overactive and auth_failures both find.
 */
import type { Duration } from '../policy/index.js'
import { thresholdEpisodes, type Episode } from './detect.js'
import { windowCounts, type SampleRequest, type WindowCountKind } from './exact-reads.js'
import type { RuleContext } from './rule.js'

/** One identity's run of windows at or over the threshold. */
export interface ThresholdRun {
  id: string
  episode: Episode
  /** The run's windows, clipped to [from, to). */
  window: { from: number; to: number }
  sampleTraceIds: string[]
}

/** The runs of each of `ids` (screened candidates) in the context's range. */
export async function thresholdRuns(
  ctx: RuleContext,
  rule: {
    window: Duration
    threshold: number
    ids: readonly string[]
    countKind: WindowCountKind
    /** Which of a run's events its samples come from. */
    sample: (id: string, window: { from: number; to: number }) => SampleRequest
  },
): Promise<ThresholdRun[]> {
  const { from, to } = ctx
  if (rule.ids.length === 0) return []
  const w = rule.window.ms
  const counts = await windowCounts(ctx.client, { ids: rule.ids, kind: rule.countKind, windowMs: w, start: from, to }, ctx.request.scope)
  const found: Array<{ id: string; episode: Episode }> = []
  for (const id of rule.ids) {
    const series = counts.get(id)
    if (!series) continue
    for (const episode of thresholdEpisodes(series, Math.floor(from / w), Math.ceil(to / w), rule.threshold)) found.push({ id, episode })
  }
  const windowOf = (e: Episode) => ({ from: Math.max(e.first * w, from), to: Math.min((e.last + 1) * w, to) })
  const samples = await ctx.sampleTraces(found.map(({ id, episode }) => rule.sample(id, windowOf(episode))))
  return found.map(({ id, episode }, i) => ({ id, episode, window: windowOf(episode), sampleTraceIds: samples[i] ?? [] }))
}
