/**
 * Identities as the API lists them: the inventory joined with observed
 * activity (first and last seen, how much), the status at a given time, and
 * one identity's activity as a time series per activity type.
 *
 * Activity is read from `nhi_identity_activity` (the ledger ordered by
 * identity) with FINAL, so a span delivered twice counts once. Type, owner
 * and business unit are the effective ones (identities/effective.ts): the
 * inventory's for a declared identity, the spans' otherwise; a key limited
 * to business units sees only the events and declarations of its units.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { z } from 'zod'
import { type TimeRange } from '../http/params.js'
import { toClickHouseTime } from '../storage/time.js'
import { count64, int64, readFirst, readRows } from '../storage/read.js'
import { businessUnitCondition, EFFECTIVE_BUSINESS_UNIT, EFFECTIVE_OWNER, EFFECTIVE_TYPE, INVENTORY_JOIN, inventoryJoinFor } from './effective.js'

/** Identity statuses (IDENTITIES.md, "Identities and statuses"). */
export const IDENTITY_STATUSES = ['active', 'dormant', 'never_seen', 'unregistered'] as const
/** One identity status. */
export type IdentityStatus = (typeof IDENTITY_STATUSES)[number]

/** One identity as GET /v1/identities lists it. */
export interface IdentitySummary {
  id: string
  type: string
  owner: string
  business_unit: string
  declared: boolean
  tier: string | null
  approved_activities: string[] | null
  first_seen: string | null
  last_seen: string | null
  activity_count: number
  status: IdentityStatus
}

/**
 * The status of an identity at `at`: `unregistered` when it acted but is
 * not declared; for a declared one, `never_seen` without activity before
 * `at`, `active` when its last activity is no older than `dormantAfterMs`,
 * else `dormant`.
 */
export function identityStatus(declared: boolean, lastSeenMs: number | null, atMs: number, dormantAfterMs: number): IdentityStatus {
  if (!declared) return 'unregistered'
  if (lastSeenMs === null) return 'never_seen'
  return atMs - lastSeenMs <= dormantAfterMs ? 'active' : 'dormant'
}

/** Intersects a key's business units with a `business_unit` filter (null: no restriction). */
export function visibleUnits(keyUnits: readonly string[] | null, filter: string | undefined): readonly string[] | null {
  if (filter === undefined) return keyUnits
  if (keyUnits === null) return [filter]
  return keyUnits.includes(filter) ? [filter] : []
}

const declaredRow = z.object({
  id: z.string(),
  type: z.string(),
  owner: z.string(),
  business_unit: z.string(),
  tier: z.string(),
  approved_activities: z.array(z.string()),
})
const observedRow = z.object({
  id: z.string(),
  first_seen_ms: int64,
  last_seen_ms: int64,
  activity_count: count64,
  eff_type: z.string(),
  eff_owner: z.string(),
  eff_bu: z.string(),
})

/** The declared identities a scope sees (declared business unit in the units). */
export async function declaredIdentities(client: ClickHouseClient, units: readonly string[] | null): Promise<Array<z.infer<typeof declaredRow>>> {
  return readRows(client, {
    query: `
      SELECT id, type, owner, business_unit, tier, approved_activities
      FROM nhi_inventory AS inv FINAL
      WHERE 1 ${businessUnitCondition(units)}
      ORDER BY id`,
    params: units ? { business_units: units } : {},
    row: declaredRow,
  })
}

/** Every identity the scope sees at `at`, declared or observed, sorted by id, with its status. */
export async function listIdentities(
  client: ClickHouseClient,
  options: { at: Date; units: readonly string[] | null; dormantAfterMs: number },
): Promise<IdentitySummary[]> {
  const params: Record<string, unknown> = { at: toClickHouseTime(options.at), ...(options.units ? { business_units: options.units } : {}) }
  const [declared, observedRows] = await Promise.all([
    declaredIdentities(client, options.units),
    readRows(client, {
      // Aliases differ from column names: ClickHouse resolves a name to a
      // SELECT alias first, and the effective-identity SQL reads the columns.
      query: `
        SELECT nhi_id AS id,
          toUnixTimestamp64Milli(min(event_time)) AS first_seen_ms,
          toUnixTimestamp64Milli(max(event_time)) AS last_seen_ms,
          count() AS activity_count,
          argMax(${EFFECTIVE_TYPE}, event_time) AS eff_type,
          argMax(${EFFECTIVE_OWNER}, event_time) AS eff_owner,
          argMax(${EFFECTIVE_BUSINESS_UNIT}, event_time) AS eff_bu
        FROM nhi_identity_activity FINAL
        ${INVENTORY_JOIN}
        WHERE event_time < {at:DateTime64(9)}
          ${businessUnitCondition(options.units)}
        GROUP BY nhi_id`,
      params,
      row: observedRow,
    }),
  ])
  const observed = new Map(observedRows.map((r) => [r.id, r]))
  const atMs = options.at.getTime()
  const summaries: IdentitySummary[] = []
  const declaredIds = new Set<string>()
  for (const d of declared) {
    declaredIds.add(d.id)
    const seen = observed.get(d.id)
    summaries.push({
      id: d.id,
      type: d.type,
      owner: d.owner,
      business_unit: d.business_unit,
      declared: true,
      tier: d.tier,
      approved_activities: d.approved_activities,
      first_seen: seen ? new Date(seen.first_seen_ms).toISOString() : null,
      last_seen: seen ? new Date(seen.last_seen_ms).toISOString() : null,
      activity_count: seen?.activity_count ?? 0,
      status: identityStatus(true, seen?.last_seen_ms ?? null, atMs, options.dormantAfterMs),
    })
  }
  for (const seen of observed.values()) {
    // Declared between the two reads: the declaration query is the truth.
    if (declaredIds.has(seen.id)) continue
    summaries.push({
      id: seen.id,
      type: seen.eff_type,
      owner: seen.eff_owner,
      business_unit: seen.eff_bu,
      declared: false,
      tier: null,
      approved_activities: null,
      first_seen: new Date(seen.first_seen_ms).toISOString(),
      last_seen: new Date(seen.last_seen_ms).toISOString(),
      activity_count: seen.activity_count,
      status: 'unregistered',
    })
  }
  return summaries.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
}

/**
 * Whether the scope may see this identity: it is declared in one of the
 * units, or has events attributed to one of them. An identity of another
 * unit is indistinguishable from one that does not exist.
 */
export async function identityVisible(client: ClickHouseClient, id: string, units: readonly string[] | null): Promise<boolean> {
  const row = await readFirst(client, {
    query: `
      SELECT
        (SELECT count() FROM nhi_inventory AS inv FINAL WHERE id = {id:String} ${businessUnitCondition(units)}) AS declared,
        (SELECT count() FROM (
          SELECT 1 FROM nhi_identity_activity
          ${inventoryJoinFor('ids')}
          WHERE nhi_id = {id:String} ${businessUnitCondition(units)}
          LIMIT 1)) AS observed`,
    params: { id, ids: [id], ...(units ? { business_units: units } : {}) },
    row: z.object({ declared: count64, observed: count64 }),
  })
  return (row?.declared ?? 0) > 0 || (row?.observed ?? 0) > 0
}

/** Period sizes of an activity series. */
export const ACTIVITY_GRANULARITIES = ['hour', 'day', 'month'] as const
/** One period size. */
export type ActivityGranularity = (typeof ACTIVITY_GRANULARITIES)[number]

const PERIOD_START: Record<ActivityGranularity, string> = {
  hour: 'toStartOfHour(event_time)',
  day: 'toStartOfDay(event_time)',
  month: 'toDateTime(toStartOfMonth(event_time))',
}

/** One period of one activity type. */
export interface ActivityPoint {
  period: string
  events: number
  errors: number
}

/** An identity's events per activity type and period in a range (periods without events are left out). */
export async function activitySeries(
  client: ClickHouseClient,
  options: { id: string; range: TimeRange; granularity: ActivityGranularity; units: readonly string[] | null },
): Promise<Array<{ activity_type: string; events: number; points: ActivityPoint[] }>> {
  const rows = await readRows(client, {
    query: `
      SELECT activity_type, toUnixTimestamp(${PERIOD_START[options.granularity]}) AS period_s, count() AS events, countIf(status = 'error') AS errors
      FROM nhi_identity_activity FINAL
      ${inventoryJoinFor('ids')}
      WHERE nhi_id = {id:String} AND event_time >= {from:DateTime64(9)} AND event_time < {to:DateTime64(9)}
        ${businessUnitCondition(options.units)}
      GROUP BY activity_type, period_s
      ORDER BY activity_type, period_s`,
    params: {
      id: options.id,
      ids: [options.id],
      from: toClickHouseTime(options.range.from),
      to: toClickHouseTime(options.range.to),
      ...(options.units ? { business_units: options.units } : {}),
    },
    row: z.object({ activity_type: z.string(), period_s: int64, events: count64, errors: count64 }),
  })
  const series = new Map<string, { activity_type: string; events: number; points: ActivityPoint[] }>()
  for (const r of rows) {
    const s = series.get(r.activity_type) ?? { activity_type: r.activity_type, events: 0, points: [] }
    s.events += r.events
    s.points.push({ period: new Date(r.period_s * 1000).toISOString(), events: r.events, errors: r.errors })
    series.set(r.activity_type, s)
  }
  return [...series.values()]
}
