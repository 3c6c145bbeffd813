/**
 * orphaned (FINDINGS.md, Kinds): a declared identity without an owner, or
 * an active undeclared one whose spans never named an owner.
 */
import { finding, iso, type Finding } from '../kinds.js'
import { activitySummary } from '../profile.js'
import { plural, type Rule } from '../rule.js'

/** One finding per ownerless identity: high while it is active, medium otherwise. */
export const orphanedRule: Rule = async (ctx) => {
  const { profiles, to, from } = ctx
  const samples = await ctx.activeSamples()
  const findings: Finding[] = []
  for (const p of profiles.values()) {
    const owner = p.declared ? p.declared.owner : p.spanOwner
    if (owner.trim() !== '' || (!p.declared && p.delivered === 0)) continue
    const activeNow = p.delivered > 0
    findings.push(
      finding(
        'orphaned',
        p.id,
        activeNow ? 'high' : 'medium',
        { from: activeNow ? p.firstInRangeMs : from, to },
        p.declared
          ? `${p.id} is declared without an owner${activeNow ? ` and was active on ${plural(p.activeDays.length, 'day')}` : ''}`
          : `${p.id} was active on ${plural(p.activeDays.length, 'day')} and no span named an owner`,
        activeNow
          ? { declared: Boolean(p.declared), ...activitySummary(p, samples) }
          : { declared: true, active_days: 0, first_seen: null, last_seen: p.lastMs > 0 ? iso(p.lastMs) : null, activity_types: [], sample_trace_ids: [] },
      ),
    )
  }
  return findings
}
