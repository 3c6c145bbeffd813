/**
 * One identity's entitlement figures, counted from its events rather than
 * by the grouped query of queries.ts. A policy decision point asks about one
 * identity at a time and wants the answer fast; for a handful of rules over
 * one identity, ClickHouse spends longer analysing the grouped query than
 * reading the few hundred events it needs. Here one plain query returns the
 * identity's events in the windows (deduplicated by FINAL), gathered per
 * activity type, name, status and span business unit; its declaration
 * comes from identities/declaration-snapshot.ts on the embedded engine and
 * from the same query on a server. TypeScript then applies the same
 * definitions through their TypeScript twins: the policy's
 * `activityRuleMatches` for the rule, and
 * identities/effective.ts's `activityApproved` and `effectiveBusinessUnit`
 * for approval and scoping. Tests hold this to the grouped query's answers.
 * An identity with more events than {@link SINGLE_DECISION_ROW_LIMIT} in
 * the windows is answered by the grouped query instead.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { toClickHouseTime } from '../storage/time.js'
import { declarationSnapshot } from '../identities/declaration-snapshot.js'
import { activityApproved, effectiveBusinessUnit } from '../identities/effective.js'
import { activityRuleMatches, type Entitlement } from '../policy/index.js'
import { entitlementFigures, SAMPLE_TRACE_IDS, windowBlocks, type IdentityFigures } from './queries.js'

/** Most events read for one identity before falling back to the grouped query. */
export const SINGLE_DECISION_ROW_LIMIT = 20_000

/** One row of the single-decision query, checked by {@link parseResultRow}. */
interface ResultRow {
  kind: 'events' | 'declaration'
  activityType: string
  activityName: string
  status: string
  businessUnit: string
  count: number
  /** Per event, in the same order: epoch milliseconds, nanoseconds within the millisecond, trace id. */
  ms: number[]
  subMs: number[]
  traceIds: string[]
  approvedActivities: string[]
}

function unexpected(line: string): Error {
  return new Error(`unexpected row from the single-decision query: ${line.slice(0, 200)}`)
}

const isNumberArray = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => typeof x === 'number')
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string')

/**
 * Checks one JSONCompactEachRow line by hand: a decision reads hundreds of
 * events, and a schema library's per-element parse cost more than the query.
 */
function parseResultRow(line: string): ResultRow {
  const r: unknown = JSON.parse(line)
  if (!Array.isArray(r) || r.length !== 10) throw unexpected(line)
  const [kind, activityType, activityName, status, businessUnit, count, ms, subMs, traceIds, approvedActivities] = r as unknown[]
  if (
    (kind !== 'events' && kind !== 'declaration') ||
    typeof activityType !== 'string' ||
    typeof activityName !== 'string' ||
    typeof status !== 'string' ||
    typeof businessUnit !== 'string' ||
    (typeof count !== 'string' && typeof count !== 'number') ||
    !isNumberArray(ms) ||
    !isNumberArray(subMs) ||
    !isStringArray(traceIds) ||
    ms.length !== subMs.length ||
    ms.length !== traceIds.length ||
    !isStringArray(approvedActivities)
  ) {
    throw unexpected(line)
  }
  return { kind, activityType, activityName, status, businessUnit, count: Number(count), ms, subMs, traceIds, approvedActivities }
}

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
  // The declaration from memory when storage is embedded; otherwise read with the events.
  const snapshot = await declarationSnapshot(client)
  const declarationQuery = snapshot
    ? ''
    : `
      UNION ALL
      SELECT 'declaration', '', '', '', business_unit, 0, [], [], [], approved_activities
      FROM nhi_inventory FINAL
      WHERE id = {id:String}`
  const result = await client.query({
    query: `
      SELECT 'events', activity_type, activity_name, status, business_unit, count(),
        -- Parallel arrays of plain numbers and strings: the cheapest JSON to read back.
        -- Aggregates of one group see its rows in the same order, so the arrays stay aligned.
        groupArray({cap:UInt32})(toFloat64(toUnixTimestamp64Milli(event_time))),
        groupArray({cap:UInt32})(toUInt32(toUnixTimestamp64Nano(event_time) % 1000000)),
        groupArray({cap:UInt32})(trace_id),
        [] :: Array(String)
      FROM nhi_identity_activity FINAL
      WHERE nhi_id = {id:String} AND (${blocks.sql}) AND event_time < {at:DateTime64(9)}
      GROUP BY activity_type, activity_name, status, business_unit${declarationQuery}`,
    format: 'JSONCompactEachRow',
    query_params: { ...blocks.params, id, at: toClickHouseTime(at), cap: rowLimit + 1 },
  })
  const rows = (await result.text()).split('\n').filter((line) => line !== '').map(parseResultRow)
  const declarationRow = rows.find((r) => r.kind === 'declaration')
  const declaration = snapshot
    ? snapshot.get(id)
    : declarationRow && { business_unit: declarationRow.businessUnit, approved_activities: declarationRow.approvedActivities }
  const groups = rows.filter((r) => r.kind === 'events')
  if (groups.reduce((sum, g) => sum + g.count, 0) > rowLimit) {
    return (await entitlementFigures(client, { ids: [id], at, rules, businessUnits, evidence: true, history: null })).get(id)
  }
  const visible: Event[] = groups
    .filter((g) => businessUnits === null || businessUnits.includes(effectiveBusinessUnit(declaration, g.businessUnit)))
    .flatMap(({ activityType, activityName, status, ms, subMs, traceIds }) =>
      ms.map((eventMs, k) => ({ activityType, activityName, status, ms: eventMs, subMs: subMs[k]!, traceId: traceIds[k]! })),
    )
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
