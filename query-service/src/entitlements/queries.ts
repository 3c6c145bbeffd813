/**
 * Activity-conditioned entitlements in SQL: for a set of identities and a
 * decision time `at`, how many approved events match each entitlement rule
 * of the policy in its rolling window `[at - window, at)`, the sample traces
 * behind them, and the timestamp that decides when the answer would change
 * if no new activity arrived. One grouped query answers any number of
 * identities.
 *
 * Reads `nhi_identity_activity` (the ledger ordered by identity) with FINAL,
 * so a span delivered twice counts once. The rule match is the policy
 * module's `activityRuleSql` (the one definition, every value bound);
 * approval and business-unit scoping go through identities/effective.ts, as
 * in every other domain.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { z } from 'zod'
import { toClickHouseTime } from '../storage/time.js'
import { APPROVED_ACTIVITY, businessUnitCondition, inventoryJoinFor } from '../identities/effective.js'
import { activityRuleSql, activityRuleSqlParams, type Entitlement } from '../policy/index.js'
import { count64, int64, readRows } from '../storage/read.js'

/** Trace ids returned as evidence per feature, newest first. */
export const SAMPLE_TRACE_IDS = 5
/** Largest k for which ClickHouse keeps the k newest events in one aggregate (groupArraySorted's limit). */
export const NEWEST_EVENTS_LIMIT = 16_777_215

/**
 * The events some rule's window can hold, as a condition: per activity type,
 * from the start of the longest window of a rule on it. The key (activity
 * type, identity, time) makes that one short range per identity. Values are
 * bound as `block<N>_type` and `block<N>_from`.
 */
export function windowBlocks(rules: readonly Entitlement[], at: Date): { sql: string; params: Record<string, string> } {
  const longest = new Map<string, number>()
  for (const rule of rules) longest.set(rule.activity_type, Math.max(longest.get(rule.activity_type) ?? 0, rule.window.ms))
  const params: Record<string, string> = {}
  const parts = [...longest].map(([type, ms], j) => {
    params[`block${j}_type`] = type
    params[`block${j}_from`] = toClickHouseTime(new Date(at.getTime() - ms))
    return `(activity_type = {block${j}_type:String} AND event_time >= {block${j}_from:DateTime64(9)})`
  })
  return { sql: parts.join(' OR '), params }
}

/** What to compute besides the per-feature counts. */
export interface EntitlementQuery {
  /** Identities asked about (deduplicated by the caller or not; each answers once). */
  ids: readonly string[]
  /** Decision time: windows end here (exclusive). */
  at: Date
  /** The policy's entitlement rules, in policy order. */
  rules: readonly Entitlement[]
  /** The caller's business units (null: all). */
  businessUnits: readonly string[] | null
  /** Sample trace ids per feature (the single-identity answer; a batch skips them). */
  evidence: boolean
  /**
   * Read each identity's whole history (whether it was ever seen, when last,
   * recent approved use since `recentFrom`) instead of only the events the
   * windows need. Single answers and the eligibility report need it; a batch
   * of decisions does not.
   */
  history: { recentFrom: Date } | null
  /** Largest min_count answered from one aggregate (default NEWEST_EVENTS_LIMIT; tests lower it to exercise the sorted read). */
  newestLimit?: number
}

/** One feature's raw figures for one identity. */
export interface FeatureFigures {
  /** Approved events matching the rule in the window. */
  observed: number
  /** Events matching the rule in the window that were not approved for the identity. */
  unapproved: number
  /** Epoch ms of the min_count-th newest approved matching event (granted features only). */
  decidingEventMs: number | null
  /** Up to SAMPLE_TRACE_IDS distinct trace ids of approved matching events, newest first. */
  sampleTraceIds: string[]
}

/** An identity's raw figures. */
export interface IdentityFigures {
  /** Visible events at any time (history mode only; 0 otherwise). */
  events: number
  /** Visible events before `at` (history mode only). */
  eventsBeforeAt: number
  /** Epoch ms of the latest visible event before `at` (history mode only). */
  lastSeenMs: number | null
  /** Approved events in [recentFrom, at) (history mode only). */
  recentApproved: number
  /** Events in [recentFrom, at) that were not approved (history mode only). */
  recentUnapproved: number
  /** Per rule, in policy order. */
  features: FeatureFigures[]
}

/**
 * A row of the figures read: the identity, then columns per rule
 * (`observed_<i>`, ...) and, in history mode, the history columns. Which
 * columns there are depends on the query, so each is checked as it is read.
 */
const figuresRow = z.looseObject({ nhi_id: z.string() })

/**
 * Figures for every identity that has visible events in what was read;
 * identities without any are absent.
 *
 * Two levels: the inner query deduplicates (FINAL) and aggregates the events
 * per identity, activity type, name, status and span business unit (the
 * windows' counts, newest times, samples); the outer one joins each such
 * group to the identity's declaration and keeps the groups a rule matches,
 * that are approved, and that the caller's units may see. Approval and rule
 * are then decided once per group rather than once per event.
 */
export async function entitlementFigures(client: ClickHouseClient, query: EntitlementQuery): Promise<Map<string, IdentityFigures>> {
  const ids = [...new Set(query.ids)]
  if (ids.length === 0) return new Map()
  const newestLimit = query.newestLimit ?? NEWEST_EVENTS_LIMIT
  const params: Record<string, unknown> = { ids, at: toClickHouseTime(query.at) }
  const inner: string[] = ['nhi_id', 'activity_type', 'activity_name', 'status', 'business_unit']
  // Decided once per group, as columns of a subquery rather than WITH
  // aliases, which ClickHouse would analyse again at every use.
  const flags: string[] = [`${APPROVED_ACTIVITY} AS approved`]
  const outer: string[] = ['nhi_id']
  query.rules.forEach((rule, i) => {
    const p = `f${i}`
    Object.assign(params, activityRuleSqlParams(rule, p))
    params[`${p}_from`] = toClickHouseTime(new Date(query.at.getTime() - rule.window.ms))
    params[`${p}_k`] = Math.min(rule.min_count, newestLimit)
    // In the window, and of the rule's activity type (a necessary part of the
    // rule; the outer query applies the whole rule to each group).
    const inWindow = `activity_type = {${p}_type:String} AND event_time >= {${p}_from:DateTime64(9)} AND event_time < {at:DateTime64(9)}`
    inner.push(`countIf(${inWindow}) AS window_${i}`, `groupArraySortedIf({${p}_k:UInt32})(-toUnixTimestamp64Milli(event_time), ${inWindow}) AS newest_${i}`)
    flags.push(`${activityRuleSql(p)} AS rule_${i}`)
    outer.push(
      `sumIf(window_${i}, rule_${i} AND approved) AS observed_${i}`,
      `sumIf(window_${i}, rule_${i} AND NOT approved) AS unapproved_${i}`,
      // Negated times, ascending: element k is the k-th newest approved matching event.
      `arraySort(groupArrayArrayIf(newest_${i}, rule_${i} AND approved))[{${p}_k:UInt32}] AS deciding_${i}`,
    )
    if (query.evidence) {
      inner.push(`groupArraySortedIf(${SAMPLE_TRACE_IDS * 4})((-toUnixTimestamp64Nano(event_time), trace_id), ${inWindow}) AS samples_${i}`)
      outer.push(`arraySlice(arraySort(groupArrayArrayIf(samples_${i}, rule_${i} AND approved)), 1, ${SAMPLE_TRACE_IDS * 4}) AS samples_${i}`)
    }
  })
  let where = `nhi_id IN {ids:Array(String)}`
  if (query.history) {
    params.recent_from = toClickHouseTime(query.history.recentFrom)
    inner.push(
      'count() AS events_in_group',
      'countIf(event_time < {at:DateTime64(9)}) AS before_at',
      'maxIf(event_time, event_time < {at:DateTime64(9)}) AS last_seen',
      'countIf(event_time >= {recent_from:DateTime64(9)} AND event_time < {at:DateTime64(9)}) AS recent',
    )
    outer.push(
      'sum(events_in_group) AS events',
      'sum(before_at) AS events_before_at',
      'toUnixTimestamp64Milli(maxIf(last_seen, before_at > 0)) AS last_seen_ms',
      'sumIf(recent, approved) AS recent_approved',
      'sumIf(recent, NOT approved) AS recent_unapproved',
    )
  } else {
    if (query.rules.length === 0) return new Map()
    const blocks = windowBlocks(query.rules, query.at)
    Object.assign(params, blocks.params)
    where += ` AND (${blocks.sql}) AND event_time < {at:DateTime64(9)}`
  }
  if (query.businessUnits) params.business_units = query.businessUnits
  const sql = `
    SELECT ${outer.join(',\n      ')}
    FROM (
      SELECT grouped.*, ${flags.join(',\n        ')}
      FROM (
        SELECT ${inner.join(',\n          ')}
        FROM nhi_identity_activity FINAL
        WHERE ${where}
        GROUP BY nhi_id, activity_type, activity_name, status, business_unit
      ) AS grouped
      ${inventoryJoinFor('ids')}
      WHERE 1 ${businessUnitCondition(query.businessUnits)}
    )
    GROUP BY nhi_id`
  const rows = await readRows(client, { query: sql, params, row: figuresRow })
  const figures = new Map<string, IdentityFigures>()
  for (const row of rows) {
    const id = row.nhi_id
    const features = query.rules.map((rule, i): FeatureFigures => {
      const observed = count64.parse(row[`observed_${i}`])
      const deciding = int64.parse(row[`deciding_${i}`])
      const samples = query.evidence ? z.array(z.tuple([z.unknown(), z.string()])).parse(row[`samples_${i}`]) : []
      return {
        observed,
        unapproved: count64.parse(row[`unapproved_${i}`]),
        decidingEventMs: observed >= rule.min_count && rule.min_count <= newestLimit ? -deciding : null,
        sampleTraceIds: [...new Set(samples.map(([, trace]) => trace))].slice(0, SAMPLE_TRACE_IDS),
      }
    })
    const history = query.history !== null
    const eventsBeforeAt = history ? count64.parse(row.events_before_at) : 0
    figures.set(id, {
      events: history ? count64.parse(row.events) : 0,
      eventsBeforeAt,
      lastSeenMs: history && eventsBeforeAt > 0 ? int64.parse(row.last_seen_ms) : null,
      recentApproved: history ? count64.parse(row.recent_approved) : 0,
      recentUnapproved: history ? count64.parse(row.recent_unapproved) : 0,
      features,
    })
  }
  await fillDecidingEventsBeyondLimit(client, query, figures, newestLimit)
  return figures
}

/**
 * For a rule whose min_count exceeds what one aggregate can keep, finds the
 * min_count-th newest approved event of each identity that earned it with a
 * sorted read (only ever needed for identities with millions of events in
 * the window).
 */
async function fillDecidingEventsBeyondLimit(
  client: ClickHouseClient,
  query: EntitlementQuery,
  figures: Map<string, IdentityFigures>,
  newestLimit: number,
): Promise<void> {
  for (const [i, rule] of query.rules.entries()) {
    if (rule.min_count <= newestLimit) continue
    const granted = [...figures].filter(([, f]) => f.features[i]!.observed >= rule.min_count).map(([id]) => id)
    if (granted.length === 0) continue
    const p = `f${i}`
    const rows = await readRows(client, {
      query: `
        SELECT nhi_id, toUnixTimestamp64Milli(event_time) AS t
        FROM nhi_identity_activity FINAL
        ${inventoryJoinFor('ids')}
        WHERE nhi_id IN {ids:Array(String)}
          AND ${activityRuleSql(p)} AND event_time >= {${p}_from:DateTime64(9)} AND event_time < {at:DateTime64(9)}
          AND ${APPROVED_ACTIVITY}
          ${businessUnitCondition(query.businessUnits)}
        ORDER BY nhi_id, event_time DESC
        LIMIT 1 OFFSET {offset:UInt64} BY nhi_id`,
      params: {
        ...activityRuleSqlParams(rule, p),
        ids: granted,
        at: toClickHouseTime(query.at),
        [`${p}_from`]: toClickHouseTime(new Date(query.at.getTime() - rule.window.ms)),
        offset: rule.min_count - 1,
        ...(query.businessUnits ? { business_units: query.businessUnits } : {}),
      },
      row: z.object({ nhi_id: z.string(), t: int64 }),
    })
    for (const row of rows) {
      figures.get(row.nhi_id)!.features[i]!.decidingEventMs = row.t
    }
  }
}
