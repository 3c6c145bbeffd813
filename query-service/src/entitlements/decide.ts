/**
 * From figures to answers: whether each feature is granted at `at`, and when
 * that answer would change if no new activity arrived.
 *
 * A feature is granted when the identity has at least `min_count` approved
 * events matching the rule in `[at - window, at)`. Moving `at` forward with
 * no new events, events only leave the window, so a granted feature stays
 * granted until its min_count-th newest event E leaves: E is in the window
 * for every `at` up to E + window (millisecond `at`, E truncated to the
 * millisecond), so the answer changes at E + window + 1 ms. A feature not
 * granted can only change with new activity: `changes_at` is null.
 */
import type { Entitlement } from '../policy/index.js'
import type { FeatureFigures } from './queries.js'

/** One feature's answer for one identity at one time. */
export interface FeatureDecision {
  feature: string
  granted: boolean
  /** Approved events matching the rule in the window. */
  observed: number
  /** The rule's min_count. */
  threshold: number
  /** Matching events in the window that did not count because the identity is not approved for them. */
  unapproved: number
  window: { from: string; to: string; duration: string }
  /** First instant at which the answer differs if no new activity arrives; null when only new activity can change it. */
  changes_at: string | null
  evidence?: { sample_trace_ids: string[] }
}

const NO_FIGURES: FeatureFigures = { observed: 0, unapproved: 0, decidingEventMs: null, sampleTraceIds: [] }

/** The answer for one rule, from the identity's figures (absent: no visible events). */
export function decideFeature(rule: Entitlement, at: Date, figures: FeatureFigures | undefined, withEvidence: boolean): FeatureDecision {
  const f = figures ?? NO_FIGURES
  const granted = f.observed >= rule.min_count
  const decision: FeatureDecision = {
    feature: rule.feature,
    granted,
    observed: f.observed,
    threshold: rule.min_count,
    unapproved: f.unapproved,
    window: { from: new Date(at.getTime() - rule.window.ms).toISOString(), to: at.toISOString(), duration: rule.window.text },
    changes_at: granted && f.decidingEventMs !== null ? new Date(f.decidingEventMs + rule.window.ms + 1).toISOString() : null,
  }
  if (withEvidence) decision.evidence = { sample_trace_ids: f.sampleTraceIds }
  return decision
}
