/**
 * One identity's entitlement figures, computed from its events rather than
 * by a grouped query. A policy decision point asks about one identity at a
 * time and wants the answer fast; for a handful of rules over one identity,
 * ClickHouse spends longer analysing the grouped query of queries.ts than
 * reading the few hundred events it needs, so here the events in the
 * windows (deduplicated by FINAL) come back as rows and are counted in
 * TypeScript, with the TypeScript twins of the same definitions: the
 * policy's `activityRuleMatches` for the rule, and identities/effective.ts's
 * `activityApproved` and `effectiveBusinessUnit` for approval and scoping.
 * Tests hold this to the grouped query's answers. An identity with more
 * events than {@link SINGLE_DECISION_ROW_LIMIT} in the windows is answered
 * by the grouped query instead.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { z } from 'zod'
import { toClickHouseTime } from '../http/params.js'
import { activityApproved, effectiveBusinessUnit } from '../identities/effective.js'
import { activityRuleMatches, type Entitlement } from '../policy/index.js'
import { entitlementFigures, SAMPLE_TRACE_IDS, windowBlocks, type IdentityFigures } from './queries.js'

/** Most events read for one identity before falling back to the grouped query. */
export const SINGLE_DECISION_ROW_LIMIT = 20_000

const eventRow = z.tuple([z.string(), z.string(), z.string(), z.string(), z.string(), z.string()])
const declarationRow = z.object({ business_unit: z.string(), approved_activities: z.array(z.string()) })

/** Figures of one identity at `at` (undefined when it has no visible events in any window). */
export async function singleIdentityFigures(
  client: ClickHouseClient,
  options: { id: string; at: Date; rules: readonly Entitlement[]; businessUnits: readonly string[] | null; rowLimit?: number },
): Promise<IdentityFigures | undefined> {
  const { id, at, rules, businessUnits } = options
  const rowLimit = options.rowLimit ?? SINGLE_DECISION_ROW_LIMIT
  if (rules.length === 0) return undefined
  const blocks = windowBlocks(rules, at)
  const [eventsResult, declarationResult] = await Promise.all([
    client.query({
      query: `
        SELECT activity_type, activity_name, status, business_unit, toString(toUnixTimestamp64Nano(event_time)), trace_id
        FROM nhi_identity_activity FINAL
        WHERE nhi_id = {id:String} AND (${blocks.sql}) AND event_time < {at:DateTime64(9)}
        LIMIT {limit:UInt32}`,
      format: 'JSONCompactEachRow',
      query_params: { ...blocks.params, id, at: toClickHouseTime(at), limit: rowLimit + 1 },
    }),
    client.query({
      query: 'SELECT business_unit, approved_activities FROM nhi_inventory FINAL WHERE id = {id:String}',
      format: 'JSONEachRow',
      query_params: { id },
    }),
  ])
  const events = (await eventsResult.json<unknown[]>()).map((r) => eventRow.parse(r))
  const [rawDeclaration] = await declarationResult.json<Record<string, unknown>>()
  if (events.length > rowLimit) {
    return (await entitlementFigures(client, { ids: [id], at, rules, businessUnits, evidence: true, history: null })).get(id)
  }
  const declaration = rawDeclaration === undefined ? undefined : declarationRow.parse(rawDeclaration)
  const atNs = BigInt(at.getTime()) * 1_000_000n
  const visible = events
    .map(([activityType, activityName, status, businessUnit, ns, traceId]) => ({ activityType, activityName, status, businessUnit, ns: BigInt(ns), traceId }))
    .filter((e) => businessUnits === null || businessUnits.includes(effectiveBusinessUnit(declaration, e.businessUnit)))
    // Newest first, as the grouped query orders its samples.
    .sort((a, b) => (a.ns > b.ns ? -1 : a.ns < b.ns ? 1 : a.traceId < b.traceId ? -1 : a.traceId > b.traceId ? 1 : 0))
  if (visible.length === 0) return undefined
  const features = rules.map((rule) => {
    const fromNs = atNs - BigInt(rule.window.ms) * 1_000_000n
    const matching = visible.filter((e) => e.ns >= fromNs && e.ns < atNs && activityRuleMatches(rule, e))
    const approved = matching.filter((e) => activityApproved(declaration, e.activityType, e.activityName))
    const deciding = approved[rule.min_count - 1]
    return {
      observed: approved.length,
      unapproved: matching.length - approved.length,
      // Truncated to the millisecond, as the grouped query does.
      decidingEventMs: deciding === undefined ? null : Number(deciding.ns / 1_000_000n),
      sampleTraceIds: [...new Set(approved.slice(0, SAMPLE_TRACE_IDS * 4).map((e) => e.traceId))].slice(0, SAMPLE_TRACE_IDS),
    }
  })
  return { events: 0, eventsBeforeAt: 0, lastSeenMs: null, recentApproved: 0, recentUnapproved: 0, features }
}
