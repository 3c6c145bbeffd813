/**
 * privilege_drift (FINDINGS.md, Kinds): (a) a declared identity used an
 * activity its approved_activities does not cover; (b) another identity
 * active in the baseline stretch began an activity it did not use there.
 */
import { newNameIsDrift } from '../detect.js'
import { activityEvents, activityKey, newActivities, unapprovedActivities, type Activity } from '../exact-reads.js'
import { finding, iso } from '../kinds.js'
import type { Profile } from '../profile.js'
import { compare, plural, type Rule } from '../rule.js'

/** Most activities listed in a privilege_drift finding. */
const MAX_LISTED_ACTIVITIES = 20

/** One finding per identity, listing up to MAX_LISTED_ACTIVITIES activities. */
export const privilegeDriftRule: Rule = async (ctx) => {
  const { profiles, from, to, baselineFrom, request } = ctx
  const approvals = (p: Profile) => p.declared?.approvedActivities.length ?? 0
  const restricted = [...profiles.values()].filter((p) => p.delivered > 0 && approvals(p) > 0).map((p) => p.id)
  // Without declared approvals, what the identity did in the baseline stretch is what it is there for.
  const learned = [...profiles.values()].filter((p) => p.delivered > 0 && p.baselineDelivered > 0 && approvals(p) === 0).map((p) => p.id)
  const [unapproved, fresh] = await Promise.all([
    unapprovedActivities(ctx.client, restricted, { from, to }),
    newActivities(ctx.client, learned, { baselineFrom, from, to }, request.scope),
  ])
  // Rule (b): a new activity type needs one event; a new name of a type already used needs drift_min_events and a rate
  // at which missing the whole baseline stretch would have been improbable (a rarely used route is not a new privilege).
  const freshEvents = await activityEvents(ctx.client, fresh, { from, to }, ctx.request.scope)
  const knownTypes = (id: string) => new Set(profiles.get(id)?.series.filter((s) => s.baselineDelivered > 0).map((s) => s.activityType))
  const material = fresh.filter(
    (use) =>
      !knownTypes(use.nhiId).has(use.activityType) ||
      newNameIsDrift(freshEvents.get(activityKey(use.nhiId, use.activityType, use.activityName)) ?? 0, use.firstMs, to, request.detection.burst_baseline.ms, request.detection.drift_min_events),
  )
  const byIdentity = new Map<string, { reason: 'unapproved' | 'new_activity'; uses: Activity[] }>()
  for (const [reason, uses] of [['unapproved', unapproved], ['new_activity', material]] as const) {
    for (const use of uses) {
      const entry = byIdentity.get(use.nhiId) ?? { reason, uses: [] }
      entry.uses.push(use)
      byIdentity.set(use.nhiId, entry)
    }
  }
  const entries = [...byIdentity].map(([id, e]) => ({ id, ...e, uses: e.uses.sort((a, b) => a.firstMs - b.firstMs || compare(a.activityType, b.activityType) || compare(a.activityName, b.activityName)) }))
  const listed = entries.flatMap((e) => e.uses.slice(0, MAX_LISTED_ACTIVITIES))
  const [events, samples] = await Promise.all([
    activityEvents(ctx.client, listed, { from, to }, ctx.request.scope),
    ctx.sampleTraces(entries.map((e) => ({ nhiId: e.id, from, to, activityType: e.uses[0]!.activityType, activityName: e.uses[0]!.activityName }))),
  ])
  return entries.map((e, i) => {
    const first = e.uses[0]!
    const example = `${first.activityType}:${first.activityName}`
    const declared = profiles.get(e.id)?.declared
    return finding(
      'privilege_drift',
      e.id,
      // A secret rotation outside the list may be healthy, but it is a write to a secrets store the list did not grant.
      e.reason === 'unapproved' ? (e.uses.every((u) => u.activityType === 'secret_rotation') ? 'medium' : 'high') : 'medium',
      { from: first.firstMs, to },
      e.reason === 'unapproved'
        ? `${e.id} used ${plural(e.uses.length, 'activity', 'activities')} outside its approved_activities, first ${example}`
        : `${e.id} began ${plural(e.uses.length, 'activity', 'activities')} not seen in the ${request.detection.burst_baseline.text} before the range, first ${example}`,
      {
        reason: e.reason,
        activities: e.uses.slice(0, MAX_LISTED_ACTIVITIES).map((u) => ({
          activity_type: u.activityType,
          activity_name: u.activityName,
          events: events.get(activityKey(u.nhiId, u.activityType, u.activityName)) ?? 0,
          first_seen: iso(u.firstMs),
        })),
        activities_total: e.uses.length,
        approved_activities: declared?.approvedActivities ?? [],
        sample_trace_ids: samples[i] ?? [],
      },
    )
  })
}
