/**
 * One identity's entitlement figures, counted from its events rather than
 * by the grouped query of queries.ts. A policy decision point asks about one
 * identity at a time and wants the answer fast; for a handful of rules over
 * one identity, ClickHouse spends longer analysing the grouped query than
 * reading the few hundred events it needs. Here one plain query returns the
 * identity's events in the windows (deduplicated by FINAL), gathered per
 * activity type, name, status and span business unit, together with its
 * declaration; TypeScript then applies the same definitions through their
 * TypeScript twins: the policy's `activityRuleMatches` for the rule, and
 * identities/effective.ts's `activityApproved` and `effectiveBusinessUnit`
 * for approval and scoping. Tests hold this to the grouped query's answers.
 * An identity with more events than {@link SINGLE_DECISION_ROW_LIMIT} in
 * the windows is answered by the grouped query instead.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { z } from 'zod'
import { toClickHouseTime } from '../http/params.js'
import { activityApproved, effectiveBusinessUnit } from '../identities/effective.js'
import { activityRuleMatches, type Entitlement } from '../policy/index.js'
import { entitlementFigures, SAMPLE_TRACE_IDS, windowBlocks, type IdentityFigures } from './queries.js'

/** Most events read for one identity before falling back to the grouped query. */
export const SINGLE_DECISION_ROW_LIMIT = 20_000

const resultRow = z.tuple([
  z.enum(['events', 'declaration']),
  z.string(),
  z.string(),
  z.string(),
  z.string(),
  z.union([z.string(), z.number()]).transform(Number),
  z.array(z.tuple([z.union([z.string(), z.number()]).transform(Number), z.number(), z.string()])),
  z.array(z.string()),
])

interface Event {
  activityType: string
  activityName: string
  status: string
  /** Epoch milliseconds, and the nanoseconds within the millisecond (for order). */
  ms: number
  subMs: number
  traceId: string
}

/** Figures of one identity at `at` (undefined when it has no visible events in any window). */
export async function singleIdentityFigures(
  client: ClickHouseClient,
  options: { id: string; at: Date; rules: readonly Entitlement[]; businessUnits: readonly string[] | null; rowLimit?: number },
): Promise<IdentityFigures | undefined> {
  const { id, at, rules, businessUnits } = options
  const rowLimit = options.rowLimit ?? SINGLE_DECISION_ROW_LIMIT
  if (rules.length === 0) return undefined
  const blocks = windowBlocks(rules, at)
  const result = await client.query({
    query: `
      SELECT 'events', activity_type, activity_name, status, business_unit, count(),
        groupArray({cap:UInt32})((toUnixTimestamp64Milli(event_time), toUInt32(toUnixTimestamp64Nano(event_time) % 1000000), trace_id)),
        [] :: Array(String)
      FROM nhi_identity_activity FINAL
      WHERE nhi_id = {id:String} AND (${blocks.sql}) AND event_time < {at:DateTime64(9)}
      GROUP BY activity_type, activity_name, status, business_unit
      UNION ALL
      SELECT 'declaration', '', '', '', business_unit, 0, [], approved_activities
      FROM nhi_inventory FINAL
      WHERE id = {id:String}`,
    format: 'JSONCompactEachRow',
    query_params: { ...blocks.params, id, at: toClickHouseTime(at), cap: rowLimit + 1 },
  })
  const rows = (await result.json<unknown[]>()).map((r) => resultRow.parse(r))
  const declarationRow = rows.find((r) => r[0] === 'declaration')
  const declaration = declarationRow ? { business_unit: declarationRow[4], approved_activities: declarationRow[7] } : undefined
  const groups = rows.filter((r) => r[0] === 'events')
  if (groups.reduce((sum, g) => sum + g[5], 0) > rowLimit) {
    return (await entitlementFigures(client, { ids: [id], at, rules, businessUnits, evidence: true, history: null })).get(id)
  }
  const visible: Event[] = groups
    .filter(([, , , , businessUnit]) => businessUnits === null || businessUnits.includes(effectiveBusinessUnit(declaration, businessUnit)))
    .flatMap(([, activityType, activityName, status, , , events]) => events.map(([ms, subMs, traceId]) => ({ activityType, activityName, status, ms, subMs, traceId })))
  if (visible.length === 0) return undefined
  // Newest first, ties by trace id, as the grouped query orders its samples.
  visible.sort((a, b) => b.ms - a.ms || b.subMs - a.subMs || (a.traceId < b.traceId ? -1 : a.traceId > b.traceId ? 1 : 0))
  const atMs = at.getTime()
  const features = rules.map((rule) => {
    // Window bounds are whole milliseconds, so comparing the event's millisecond is exact.
    const fromMs = atMs - rule.window.ms
    const matching = visible.filter((e) => e.ms >= fromMs && e.ms < atMs && activityRuleMatches(rule, e))
    const approved = matching.filter((e) => activityApproved(declaration, e.activityType, e.activityName))
    return {
      observed: approved.length,
      unapproved: matching.length - approved.length,
      decidingEventMs: approved[rule.min_count - 1]?.ms ?? null,
      sampleTraceIds: [...new Set(approved.slice(0, SAMPLE_TRACE_IDS * 4).map((e) => e.traceId))].slice(0, SAMPLE_TRACE_IDS),
    }
  })
  return { events: 0, eventsBeforeAt: 0, lastSeenMs: null, recentApproved: 0, recentUnapproved: 0, features }
}
