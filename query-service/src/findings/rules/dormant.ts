/**
 * dormant (FINDINGS.md, Kinds and Baselines): an identity silent past
 * dormant_after, or early by its own cadence, while the service it reported
 * through kept reporting; a declared identity never seen. A silence the
 * service shares is not judged here: telemetry_gap reports the service.
 */
import { lastSpans } from '../../telemetry/queries.js'
import { dormancyThreshold } from '../detect.js'
import { longestIdentitySilences } from '../digest-reads.js'
import { lastServices } from '../exact-reads.js'
import { finding, iso, type Finding } from '../kinds.js'
import type { Profile } from '../profile.js'
import { days, type Rule, type RuleContext } from '../rule.js'

/** An identity whose silence cannot be judged because the service it reported through went quiet too. */
export interface DormancyGap {
  service: string
  ids: string[]
  lastSpanMs: number
}

/** The dormancy judgement: the dormant findings, and per quiet service the silences it explains. */
export interface Dormancy {
  findings: Finding[]
  unjudged: Map<string, DormancyGap>
}

/** The dormant findings of the evaluation's judgement. */
export const dormantRule: Rule = async (ctx) => (await ctx.dormancy()).findings

/**
 * Judges every silent identity: dormant findings, and the silences a quiet
 * service explains instead (read once per evaluation, through
 * RuleContext.dormancy, by this rule and telemetry_gap).
 */
export async function judgeDormancy(ctx: RuleContext): Promise<Dormancy> {
  const { profiles, to, request } = ctx
  const after = request.detection.dormant_after
  const findings: Finding[] = []
  // Silent past dormant_after, or past dormant_early_after and dormant_gap_factor × the identity's own longest earlier silence.
  const early = request.detection.dormant_early_after
  const maybe = [...profiles.values()].filter((p) => p.lastMs > 0 && to - p.lastMs > early.ms)
  const gaps = await longestIdentitySilences(ctx.client, maybe.filter((p) => to - p.lastMs <= after.ms).map((p) => p.id), { lookback: ctx.lookback, before: to }, request.scope)
  const thresholdOf = (p: Profile) => dormancyThreshold(gaps.get(p.id), { afterMs: after.ms, earlyAfterMs: early.ms, gapFactor: request.detection.dormant_gap_factor })
  const silent = maybe.filter((p) => to - p.lastMs > thresholdOf(p))
  for (const p of profiles.values()) {
    if (p.lastMs === 0 && p.declared && to - p.declared.updatedMs > after.ms) {
      findings.push(
        finding('dormant', p.id, 'low', { from: p.declared.updatedMs, to }, `${p.id} is declared but no activity of it has been seen (declaration unchanged for ${days(to - p.declared.updatedMs)} days)`, {
          declared: true,
          last_seen: null,
          inactive_days: null,
          dormant_after: after.text,
          last_service: null,
          longest_earlier_silence_days: null,
          declaration_updated: iso(p.declared.updatedMs),
        }),
      )
    }
  }
  const unjudged = new Map<string, DormancyGap>()
  if (silent.length === 0) return { findings, unjudged }
  const services = await lastServices(ctx.client, new Map(silent.map((p) => [p.id, p.lastMs])), to, ctx.request.scope)
  const since = Math.min(...silent.map((p) => p.lastMs))
  const lastSpan = await lastSpans(ctx.client, new Date(since), new Date(to), [...new Set(services.values())])
  for (const p of silent) {
    const service = services.get(p.id) ?? ''
    const serviceLast = lastSpan.get(service) ?? 0
    // Dormant only if the service kept reporting past the point where the identity should have shown up again.
    if (serviceLast < p.lastMs + thresholdOf(p)) {
      const gap = unjudged.get(service) ?? { service, ids: [], lastSpanMs: serviceLast }
      gap.ids.push(p.id)
      unjudged.set(service, gap)
      continue
    }
    findings.push(
      finding('dormant', p.id, 'medium', { from: p.lastMs, to }, `${p.id} has had no activity for ${days(to - p.lastMs)} days while ${service} kept reporting${to - p.lastMs > after.ms ? '' : ` (its longest earlier silence: ${days(gaps.get(p.id) ?? 0)} days)`}`, {
        declared: Boolean(p.declared),
        last_seen: iso(p.lastMs),
        inactive_days: days(to - p.lastMs),
        dormant_after: after.text,
        longest_earlier_silence_days: to - p.lastMs > after.ms ? null : days(gaps.get(p.id) ?? 0),
        last_service: service,
        declaration_updated: p.declared ? iso(p.declared.updatedMs) : null,
      }),
    )
  }
  return { findings, unjudged }
}
