/**
 * unregistered (FINDINGS.md, Kinds): an identity active in the range that
 * the inventory does not declare.
 */
import { finding, type Finding } from '../kinds.js'
import { activitySummary } from '../profile.js'
import { plural, type Rule } from '../rule.js'

/** One medium finding per undeclared identity active in the range. */
export const unregisteredRule: Rule = async (ctx) => {
  const { profiles, to } = ctx
  const samples = await ctx.activeSamples()
  const findings: Finding[] = []
  for (const p of profiles.values()) {
    if (p.delivered === 0 || p.declared) continue
    findings.push(finding('unregistered', p.id, 'medium', { from: p.firstInRangeMs, to }, `${p.id} was active on ${plural(p.activeDays.length, 'day')} but is not declared in the inventory`, activitySummary(p, samples)))
  }
  return findings
}
