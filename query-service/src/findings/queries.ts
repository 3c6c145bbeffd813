/**
 * The identity-side reads behind GET /v1/findings.
 *
 * One read of the findings digest (migration 0020: per identity, activity
 * type and hour, delivered and failed counts and first/last/last-ok times;
 * per identity and day, owner and credentials) summarises every series of
 * the look-back; partial hours at the edges of the range come from the
 * ledger itself, so every time is exact. Counts there are *delivered*
 * counts, an upper bound of the distinct spans: they only choose which
 * series a rule must look at again. Every count a rule decides on, and
 * every count a finding shows, comes from a narrow read of
 * `nhi_identity_activity` with FINAL (each span once however often it was
 * delivered), keyed by activity type and identity so that it touches only
 * the flagged series.
 *
 * Every value is a bound parameter. SQL text is assembled only from fixed
 * fragments and from counts (how many samples were asked for).
 */
import { TupleParam, type ClickHouseClient } from '@clickhouse/client'
import { z } from 'zod'
import { toClickHouseTime } from '../storage/time.js'
import { APPROVED_ACTIVITY, businessUnitCondition, INVENTORY_JOIN, inventoryJoinFor } from '../identities/effective.js'
import { toCount } from '../storage/client.js'
import type { BusinessUnitScope } from '../identities/effective.js'
import { distinctFirst, READ_SETTINGS } from '../telemetry/queries.js'

const HOUR_MS = 3_600_000
const DAY_MS = 86_400_000
/** Sample trace ids per finding. */
export const SAMPLE_TRACES = 3

const count64 = z.union([z.string(), z.number()]).transform((v) => toCount(v))
const int64 = z.union([z.string(), z.number()]).transform((v) => Number(v))

/** Joins the inventory and keeps the caller's business units, when the caller is limited. */
function scoped(scope: BusinessUnitScope): { join: string; where: string; params: Record<string, unknown> } {
  return scope ? { join: INVENTORY_JOIN, where: businessUnitCondition(scope), params: { business_units: scope } } : { join: '', where: '', params: {} }
}

const ms = (value: number) => toClickHouseTime(new Date(value))
const seconds = (value: number) => toClickHouseTime(new Date(value)).slice(0, 19)
const floorTo = (value: number, unit: number) => Math.floor(value / unit) * unit

/** What the series read needs: the times involved. */
export interface SeriesScan {
  /** Start of the look-back (epoch ms, a whole hour, at or before `baselineFrom` and the first period). */
  lookback: number
  /** The range judged. */
  from: number
  to: number
  /** Start of the baseline stretch new activity is compared with (from - burst_baseline). */
  baselineFrom: number
  /** Growth periods: origin (a multiple of the length), length and how many (summed here only when the length is whole hours). */
  period: { origin: number; ms: number; count: number }
}

/** One (identity, activity type) series summarised over the look-back. */
export interface SeriesRow {
  nhiId: string
  activityType: string
  /** cityHash64(nhi_id, activity_type) in decimal: how other reads of the digest name this series. */
  key: string
  /** Delivered events in [from, to) (an upper bound of distinct spans; 0 exactly when there were none). */
  delivered: number
  /** Delivered events in the hours from baselineFrom's to from (inclusive of the hour baselineFrom falls in). */
  baselineDelivered: number
  /** First and last event in the look-back (epoch ms). */
  firstMs: number
  lastMs: number
  /** First event in [from, to), or 0. */
  firstInRangeMs: number
  /** Latest event with status ok, or 0. */
  lastOkMs: number
  /** UTC days (days since the epoch) with events in [from, to). */
  activeDays: number[]
  /** Delivered events per growth period, oldest first (empty unless periods are whole hours). */
  periods: number[]
  /** Most delivered events in one hour (or part of an hour) of the range. */
  maxHour: number
  /** Most failed token exchanges in one hour of the range. */
  maxFailedHour: number
}

const seriesRow = z.object({
  nhi_id: z.string(),
  activity_type: z.string(),
  series_key: z.string(),
  delivered: count64,
  baseline_delivered: count64,
  first_ms: int64,
  last_ms: int64,
  first_in_range_ms: int64,
  last_ok_ms: int64,
  active_days: z.array(int64),
  periods: z.array(count64),
  max_hour: count64,
  max_failed_hour: count64,
})

// The rows of the digest for whole hours of [lookback, to) except the hour `from` falls in, and
// ledger rows aggregated the same way for the partial hours at `from` and `to`, each with an
// exact in_range flag.
function digestSource(scan: { lookback: number; from: number; to: number }): { sql: string; params: Record<string, unknown> } {
  const fromFloor = floorTo(scan.from, HOUR_MS)
  const fromCeil = Math.ceil(scan.from / HOUR_MS) * HOUR_MS
  const toFloor = floorTo(scan.to, HOUR_MS)
  const edges: Array<[number, number]> = []
  if (fromFloor !== scan.from) edges.push([fromFloor, Math.min(fromCeil, scan.to)])
  if (toFloor !== scan.to && toFloor >= fromCeil) edges.push([toFloor, scan.to])
  const params: Record<string, unknown> = {
    d_lookback: seconds(scan.lookback),
    d_end: seconds(toFloor),
    d_from_floor: seconds(fromFloor),
    d_from_ceil: seconds(fromCeil),
    d_from: ms(scan.from),
  }
  const edgeCondition = edges
    .map(([start, end], i) => {
      params[`d_edge${i}_from`] = ms(start)
      params[`d_edge${i}_to`] = ms(end)
      return `(event_time >= {d_edge${i}_from:DateTime64(3)} AND event_time < {d_edge${i}_to:DateTime64(3)})`
    })
    .join(' OR ')
  const digest = `
        SELECT nhi_id, activity_type, hour, business_unit, delivered AS n, failed AS failures, first_time, last_time, last_ok_time, hour >= {d_from_ceil:DateTime} AS in_range
        FROM nhi_findings_hourly
        WHERE hour >= {d_lookback:DateTime} AND hour < {d_end:DateTime} AND NOT (hour >= {d_from_floor:DateTime} AND hour < {d_from_ceil:DateTime})`
  const ledger = `
        SELECT nhi_id, activity_type, toStartOfHour(event_time, 'UTC') AS hour, business_unit, count() AS n, countIf(status = 'error') AS failures,
          min(toDateTime64(event_time, 3, 'UTC')) AS first_time, max(toDateTime64(event_time, 3, 'UTC')) AS last_time,
          maxIf(toDateTime64(event_time, 3, 'UTC'), status = 'ok') AS last_ok_time, event_time >= {d_from:DateTime64(3)} AS in_range
        FROM nhi_activity
        WHERE notEmpty(nhi_id) AND (${edgeCondition})
        GROUP BY nhi_id, activity_type, hour, business_unit, in_range`
  return { sql: edges.length > 0 ? `(${digest}
        UNION ALL${ledger})` : `(${digest})`, params }
}

/**
 * Summarises every (identity, activity type) series over [lookback, to)
 * from the findings digest (see the module note on delivered counts).
 */
export async function seriesSummaries(client: ClickHouseClient, scan: SeriesScan, scope: BusinessUnitScope): Promise<SeriesRow[]> {
  const s = scoped(scope)
  const source = digestSource(scan)
  const hourlyPeriods = scan.period.ms % HOUR_MS === 0
  // Hours before the first period get a negative index (floor division), which Resample ignores.
  const periodShift = Math.ceil((scan.period.origin - scan.lookback) / scan.period.ms) + 1
  const result = await client.query({
    query: `
      SELECT series_id AS nhi_id, series_type AS activity_type, toString(series_key) AS series_key, delivered, baseline_delivered, first_ms, last_ms, first_in_range_ms, last_ok_ms, active_days, periods, max_hour, max_failed_hour
      FROM (
        SELECT cityHash64(nhi_id, activity_type) AS series_key, any(nhi_id) AS series_id, any(activity_type) AS series_type,
          sumIf(n, in_range) AS delivered,
          sumIf(n, NOT in_range AND hour >= {baseline_hour:DateTime}) AS baseline_delivered,
          toUnixTimestamp64Milli(min(first_time)) AS first_ms,
          toUnixTimestamp64Milli(max(last_time)) AS last_ms,
          toUnixTimestamp64Milli(minIf(first_time, in_range)) AS first_in_range_ms,
          toUnixTimestamp64Milli(max(last_ok_time)) AS last_ok_ms,
          arraySort(groupUniqArrayIf(intDiv(toUnixTimestamp(hour), 86400), in_range)) AS active_days,
          ${hourlyPeriods ? `sumResample(0, {period_count:UInt32}, 1)(n, intDiv(toInt64(toUnixTimestamp(hour)) * 1000 - {period_origin_ms:Int64} + {period_shift_ms:Int64}, {period_ms:Int64}) - {period_shift:Int64})` : "CAST([], 'Array(UInt64)')"} AS periods,
          maxIf(n, in_range) AS max_hour,
          maxIf(failures, in_range AND activity_type = 'token_exchange') AS max_failed_hour
        FROM ${source.sql} AS digest
        ${s.join}
        WHERE 1 ${s.where}
        -- One 64-bit key instead of two strings: hashing beats comparing strings, and a collision is 2^-64 unlikely.
        GROUP BY series_key
      )
      ORDER BY nhi_id, activity_type`,
    format: 'JSONEachRow',
    query_params: {
      ...source.params,
      baseline_hour: seconds(floorTo(scan.baselineFrom, HOUR_MS)),
      period_origin_ms: scan.period.origin,
      period_ms: scan.period.ms,
      period_shift: periodShift,
      period_shift_ms: periodShift * scan.period.ms,
      period_count: scan.period.count,
      ...s.params,
    },
    clickhouse_settings: READ_SETTINGS,
  })
  return (await result.json<Record<string, unknown>>()).map((raw) => {
    const r = seriesRow.parse(raw)
    return {
      nhiId: r.nhi_id,
      activityType: r.activity_type,
      key: r.series_key,
      delivered: r.delivered,
      baselineDelivered: r.baseline_delivered,
      firstMs: r.first_ms,
      lastMs: r.last_ms,
      firstInRangeMs: r.first_in_range_ms,
      lastOkMs: r.last_ok_ms,
      activeDays: r.active_days,
      periods: r.periods,
      maxHour: r.max_hour,
      maxFailedHour: r.max_failed_hour,
    }
  })
}

/** Owner and credentials of one identity, by whole UTC days. */
export interface IdentityFacts {
  /** An owner some span named ('' when none did). */
  owner: string
  /** Credential fingerprints used on the days of the credential window. */
  credentials: string[]
}

/** Owner (days of the look-back) and credentials (days of the credential window) of every identity, from the digest. */
export async function identityFacts(client: ClickHouseClient, window: { lookback: number; credentialFrom: number; to: number }, scope: BusinessUnitScope): Promise<Map<string, IdentityFacts>> {
  const s = scoped(scope)
  const day = (value: number) => new Date(floorTo(value, DAY_MS)).toISOString().slice(0, 10)
  const result = await client.query({
    query: `
      SELECT nhi_id, max(owner) AS owner, arraySort(groupUniqArrayArrayIf(credentials, day >= {credential_day:Date})) AS credentials
      FROM nhi_findings_daily AS daily ${s.join}
      WHERE day >= {first_day:Date} AND day <= {last_day:Date} ${s.where}
      GROUP BY nhi_id`,
    format: 'JSONEachRow',
    query_params: { first_day: day(window.lookback), last_day: day(window.to - 1), credential_day: day(window.credentialFrom), ...s.params },
  })
  const row = z.object({ nhi_id: z.string(), owner: z.string(), credentials: z.array(z.string()) })
  return new Map((await result.json<Record<string, unknown>>()).map((raw) => row.parse(raw)).map((r) => [r.nhi_id, { owner: r.owner, credentials: r.credentials }]))
}

/** Exact events per growth period (FINAL) of the given series, keyed by seriesKey. */
export async function exactPeriods(
  client: ClickHouseClient,
  series: ReadonlyArray<{ nhiId: string; activityType: string }>,
  period: { origin: number; ms: number; count: number },
  scope: BusinessUnitScope,
): Promise<Map<string, number[]>> {
  if (series.length === 0) return new Map()
  const s = scoped(scope)
  const result = await client.query({
    query: `
      SELECT nhi_id, activity_type, countResample(0, {period_count:UInt32}, 1)(intDiv(toUnixTimestamp64Milli(event_time) - {period_origin_ms:Int64}, {period_ms:Int64})) AS periods
      FROM nhi_identity_activity FINAL ${s.join}
      WHERE (activity_type, nhi_id) IN {pairs:Array(Tuple(String, String))}
        AND event_time >= {origin:DateTime64(3)} AND event_time < {end:DateTime64(3)} ${s.where}
      GROUP BY nhi_id, activity_type`,
    format: 'JSONEachRow',
    query_params: {
      pairs: series.map((x) => new TupleParam([x.activityType, x.nhiId])),
      period_count: period.count,
      period_origin_ms: period.origin,
      period_ms: period.ms,
      origin: ms(period.origin),
      end: ms(period.origin + period.count * period.ms),
      ...s.params,
    },
    clickhouse_settings: READ_SETTINGS,
  })
  const row = z.object({ nhi_id: z.string(), activity_type: z.string(), periods: z.array(count64) })
  return new Map((await result.json<Record<string, unknown>>()).map((raw) => row.parse(raw)).map((r) => [seriesKey(r.nhi_id, r.activity_type), r.periods]))
}

/** What is known of an identity from before the look-back. */
export interface HistoryRow {
  nhiId: string
  firstMs: number
  lastMs: number
  /** Latest ok secret_rotation, or 0. */
  lastRotationMs: number
}

const historyRow = z.object({ nhi_id: z.string(), first_ms: int64, last_ms: int64, last_rotation_ms: int64 })

/** First and last activity and last ok rotation of every identity seen before `before` (a whole hour), from the digest. */
export async function historyBefore(client: ClickHouseClient, before: number, scope: BusinessUnitScope): Promise<HistoryRow[]> {
  const s = scoped(scope)
  const result = await client.query({
    query: `
      SELECT nhi_id, toUnixTimestamp64Milli(min(first_time)) AS first_ms, toUnixTimestamp64Milli(max(last_time)) AS last_ms,
        toUnixTimestamp64Milli(maxIf(last_ok_time, activity_type = 'secret_rotation')) AS last_rotation_ms
      FROM nhi_findings_hourly AS digest ${s.join}
      WHERE hour < {before:DateTime} ${s.where}
      GROUP BY nhi_id`,
    format: 'JSONEachRow',
    query_params: { before: seconds(before), ...s.params },
  })
  return (await result.json<Record<string, unknown>>()).map((raw) => {
    const r = historyRow.parse(raw)
    return { nhiId: r.nhi_id, firstMs: r.first_ms, lastMs: r.last_ms, lastRotationMs: r.last_rotation_ms }
  })
}

/** A declared identity. */
export interface Declaration {
  id: string
  type: string
  owner: string
  businessUnit: string
  approvedActivities: string[]
  /** When the declaration was last written (epoch ms). */
  updatedMs: number
}

const declarationRow = z.object({ id: z.string(), type: z.string(), owner: z.string(), business_unit: z.string(), approved_activities: z.array(z.string()), updated_ms: int64 })

/**
 * The current inventory, limited to the caller's business units. Like every
 * other reader (INVENTORY_JOIN), findings judge activity against the
 * declarations as they stand now.
 */
export async function declarations(client: ClickHouseClient, scope: BusinessUnitScope): Promise<Declaration[]> {
  const result = await client.query({
    query: `
      SELECT id, type, owner, business_unit, approved_activities, toUnixTimestamp64Milli(updated_at) AS updated_ms
      FROM nhi_inventory FINAL
      ${scope ? 'WHERE business_unit IN {business_units:Array(String)}' : ''}
      ORDER BY id`,
    format: 'JSONEachRow',
    query_params: scope ? { business_units: scope } : {},
  })
  return (await result.json<Record<string, unknown>>()).map((raw) => {
    const r = declarationRow.parse(raw)
    return { id: r.id, type: r.type, owner: r.owner, businessUnit: r.business_unit, approvedActivities: r.approved_activities, updatedMs: r.updated_ms }
  })
}

/** One activity (type and name) of one identity. */
export interface Activity {
  nhiId: string
  activityType: string
  activityName: string
  /** First use in the window read (epoch ms). */
  firstMs: number
}

const activityRow = z.object({ nhi_id: z.string(), activity_type: z.string(), activity_name: z.string(), first_ms: int64 })
const parseActivities = (rows: Record<string, unknown>[]): Activity[] =>
  rows.map((raw) => {
    const r = activityRow.parse(raw)
    return { nhiId: r.nhi_id, activityType: r.activity_type, activityName: r.activity_name, firstMs: r.first_ms }
  })

/**
 * Activities (type and name) the given identities used in [from, to) and
 * not once in [baselineFrom, from): first seen after the baseline stretch.
 * Secret rotations are never drift: rotating is the hygiene
 * stale_credential asks for, not a new privilege. (Distinct sets and first
 * times: no FINAL needed.)
 */
export async function newActivities(client: ClickHouseClient, ids: readonly string[], window: { baselineFrom: number; from: number; to: number }, scope: BusinessUnitScope): Promise<Activity[]> {
  if (ids.length === 0) return []
  const s = scoped(scope)
  const result = await client.query({
    query: `
      SELECT any(id) AS nhi_id, any(type) AS activity_type, any(name) AS activity_name, min(t) AS first_ms
      FROM (
        SELECT nhi_id AS id, activity_type AS type, activity_name AS name, toUnixTimestamp64Milli(event_time) AS t
        FROM nhi_activity ${s.join}
        PREWHERE nhi_id IN {ids:Array(String)}
        WHERE activity_type != 'secret_rotation' AND event_time >= {baseline_from:DateTime64(3)} AND event_time < {to:DateTime64(3)} ${s.where}
      )
      GROUP BY cityHash64(id, type, name)
      HAVING first_ms >= {from_ms:Int64}
      ORDER BY nhi_id, activity_type, activity_name`,
    format: 'JSONEachRow',
    query_params: { ids, baseline_from: ms(window.baselineFrom), to: ms(window.to), from_ms: window.from, ...s.params },
  })
  return parseActivities(await result.json<Record<string, unknown>>())
}

/**
 * Activities the given declared identities used in [from, to) that their
 * `approved_activities` does not cover (the inventory's own rule,
 * APPROVED_ACTIVITY), judged once per distinct (type, name). The list is
 * the organisation's own statement of what the identity may do, so secret
 * rotations are judged too (FINDINGS.md, privilege_drift (a)).
 */
export async function unapprovedActivities(client: ClickHouseClient, ids: readonly string[], window: { from: number; to: number }): Promise<Activity[]> {
  if (ids.length === 0) return []
  const result = await client.query({
    query: `
      SELECT nhi_id, activity_type, activity_name, first_ms
      FROM (
        SELECT any(id) AS nhi_id, any(type) AS activity_type, any(name) AS activity_name, min(t) AS first_ms
        FROM (
          SELECT nhi_id AS id, activity_type AS type, activity_name AS name, toUnixTimestamp64Milli(event_time) AS t
          FROM nhi_activity
          PREWHERE nhi_id IN {ids:Array(String)}
          WHERE event_time >= {from:DateTime64(3)} AND event_time < {to:DateTime64(3)}
        )
        GROUP BY cityHash64(id, type, name)
      ) AS used
      ${inventoryJoinFor('ids')}
      WHERE NOT ${APPROVED_ACTIVITY}
      ORDER BY nhi_id, activity_type, activity_name`,
    format: 'JSONEachRow',
    query_params: { ids, from: ms(window.from), to: ms(window.to) },
  })
  return parseActivities(await result.json<Record<string, unknown>>())
}

/** Exact events (FINAL) in [from, to) of each given activity, keyed by activityKey. */
export async function activityEvents(client: ClickHouseClient, activities: readonly Activity[], window: { from: number; to: number }, scope: BusinessUnitScope): Promise<Map<string, number>> {
  if (activities.length === 0) return new Map()
  const s = scoped(scope)
  const result = await client.query({
    query: `
      SELECT nhi_id, activity_type, activity_name, count() AS events
      FROM nhi_identity_activity FINAL ${s.join}
      WHERE (activity_type, nhi_id) IN {pairs:Array(Tuple(String, String))} AND activity_name IN {names:Array(String)}
        AND event_time >= {from:DateTime64(3)} AND event_time < {to:DateTime64(3)}
        ${s.where}
      GROUP BY nhi_id, activity_type, activity_name`,
    format: 'JSONEachRow',
    query_params: {
      ...s.params,
      pairs: [...new Map(activities.map((a) => [seriesKey(a.nhiId, a.activityType), new TupleParam([a.activityType, a.nhiId])])).values()],
      names: [...new Set(activities.map((a) => a.activityName))],
      from: ms(window.from),
      to: ms(window.to),
    },
    clickhouse_settings: READ_SETTINGS,
  })
  const row = z.object({ nhi_id: z.string(), activity_type: z.string(), activity_name: z.string(), events: count64 })
  return new Map((await result.json<Record<string, unknown>>()).map((raw) => row.parse(raw)).map((r) => [activityKey(r.nhi_id, r.activity_type, r.activity_name), r.events]))
}

/** The key of one activity of one identity. */
export function activityKey(nhiId: string, activityType: string, activityName: string): string {
  return `${nhiId}\u0000${activityType}\u0000${activityName}`
}

/** Which events a window count covers. */
export type WindowCountKind = 'by_type' | 'all' | 'failed_token_exchange'

/**
 * Exact counts per window of `windowMs` (numbered from the epoch) for the
 * given identities over [start, to): per (identity, activity type), per
 * identity over all types, or of failed token exchanges. Keys of the
 * result are `nhi_id` or `nhi_id\u0000activity_type`.
 */
export async function windowCounts(
  client: ClickHouseClient,
  request: { ids: readonly string[]; types?: readonly string[]; kind: WindowCountKind; windowMs: number; start: number; to: number },
  scope: BusinessUnitScope,
): Promise<Map<string, Map<number, number>>> {
  const counts = new Map<string, Map<number, number>>()
  if (request.ids.length === 0) return counts
  const s = scoped(scope)
  const byType = request.kind === 'by_type'
  const result = await client.query({
    query: `
      SELECT nhi_id, ${byType ? 'activity_type' : "''"} AS type, intDiv(toUnixTimestamp64Milli(event_time), {window_ms:Int64}) AS k, count() AS n
      FROM nhi_identity_activity FINAL ${s.join}
      WHERE nhi_id IN {ids:Array(String)} AND event_time >= {start:DateTime64(3)} AND event_time < {to:DateTime64(3)}
        ${request.types ? 'AND activity_type IN {types:Array(String)}' : ''}
        ${request.kind === 'failed_token_exchange' ? "AND activity_type = 'token_exchange' AND status = 'error'" : ''}
        ${s.where}
      GROUP BY nhi_id, type, k`,
    format: 'JSONEachRow',
    query_params: { ids: request.ids, window_ms: request.windowMs, start: ms(request.start), to: ms(request.to), ...(request.types ? { types: request.types } : {}), ...s.params },
    clickhouse_settings: READ_SETTINGS,
  })
  const row = z.object({ nhi_id: z.string(), type: z.string(), k: int64, n: count64 })
  for (const raw of await result.json<Record<string, unknown>>()) {
    const r = row.parse(raw)
    const key = byType ? seriesKey(r.nhi_id, r.type) : r.nhi_id
    const series = counts.get(key) ?? new Map<number, number>()
    series.set(r.k, r.n)
    counts.set(key, series)
  }
  return counts
}

/** The key of one (identity, activity type) series. */
export function seriesKey(nhiId: string, activityType: string): string {
  return `${nhiId}\u0000${activityType}`
}

/** A slice of one identity's activity to take sample trace ids from. */
export interface SampleRequest {
  nhiId: string
  from: number
  to: number
  activityType?: string
  activityName?: string
  failedOnly?: boolean
}

/**
 * The latest trace ids of each requested slice (newest first, distinct),
 * one small ordered read per slice on the identity-sorted table.
 */
export async function sampleTraces(client: ClickHouseClient, requests: readonly SampleRequest[], scope: BusinessUnitScope): Promise<string[][]> {
  if (requests.length === 0) return []
  // A limited caller's samples come from the rows it may see only (an identity's rows can name several units).
  const s = scoped(scope)
  const params: Record<string, unknown> = { ...s.params }
  const parts = requests.map((r, i) => {
    params[`n${i}`] = r.nhiId
    params[`f${i}`] = ms(r.from)
    params[`t${i}`] = ms(r.to)
    const conditions = [`nhi_id = {n${i}:String}`, `event_time >= {f${i}:DateTime64(3)}`, `event_time < {t${i}:DateTime64(3)}`]
    if (r.activityType !== undefined) {
      params[`a${i}`] = r.activityType
      conditions.push(`activity_type = {a${i}:String}`)
    }
    if (r.activityName !== undefined) {
      params[`m${i}`] = r.activityName
      conditions.push(`activity_name = {m${i}:String}`)
    }
    if (r.failedOnly) conditions.push(`status = 'error'`)
    return `SELECT ${i} AS i, trace_id, event_time FROM nhi_identity_activity ${s.join} WHERE ${conditions.join(' AND ')} ${s.where} ORDER BY event_time DESC, trace_id DESC LIMIT ${SAMPLE_TRACES * 3}`
  })
  const result = await client.query({
    query: `SELECT i, trace_id FROM (${parts.map((p) => `(${p})`).join(' UNION ALL ')}) ORDER BY i, event_time DESC, trace_id DESC`,
    format: 'JSONEachRow',
    query_params: params,
  })
  const samples: string[][] = requests.map(() => [])
  for (const raw of await result.json<Record<string, unknown>>()) {
    const r = z.object({ i: int64, trace_id: z.string() }).parse(raw)
    samples[r.i]?.push(r.trace_id)
  }
  return samples.map((s) => distinctFirst(s, SAMPLE_TRACES))
}

const hourText = (msValue: number) => toClickHouseTime(new Date(Math.floor(msValue / HOUR_MS) * HOUR_MS)).slice(0, 19)

/** Latest trace ids of each identity within the hour of its last activity, from the hour-sorted ledger. */
export async function latestTraces(client: ClickHouseClient, lastSeen: ReadonlyMap<string, number>, scope: BusinessUnitScope): Promise<Map<string, string[]>> {
  if (lastSeen.size === 0) return new Map()
  const s = scoped(scope)
  const pairs = [...lastSeen].map(([id, last]) => new TupleParam([id, hourText(last)]))
  const hours = [...new Set([...lastSeen.values()].map(hourText))]
  const result = await client.query({
    query: `
      SELECT nhi_id, arrayMap(x -> x.2, groupArraySorted(${SAMPLE_TRACES * 3})((-toUnixTimestamp64Nano(event_time), trace_id))) AS samples
      FROM nhi_activity ${s.join}
      WHERE toStartOfHour(event_time) IN {hours:Array(DateTime)}
        AND (nhi_id, toStartOfHour(event_time)) IN {pairs:Array(Tuple(String, DateTime))}
        ${s.where}
      GROUP BY nhi_id`,
    format: 'JSONEachRow',
    query_params: { hours, pairs, ...s.params },
  })
  const row = z.object({ nhi_id: z.string(), samples: z.array(z.string()) })
  return new Map((await result.json<Record<string, unknown>>()).map((raw) => row.parse(raw)).map((r) => [r.nhi_id, distinctFirst(r.samples, SAMPLE_TRACES)]))
}

/**
 * The service of each identity's last activity before `to` that the caller's
 * units may see, read from the hour it was last seen in.
 */
export async function lastServices(client: ClickHouseClient, lastSeen: ReadonlyMap<string, number>, to: number, scope: BusinessUnitScope): Promise<Map<string, string>> {
  if (lastSeen.size === 0) return new Map()
  const s = scoped(scope)
  const pairs = [...lastSeen].map(([id, last]) => new TupleParam([id, hourText(last)]))
  const result = await client.query({
    query: `
      SELECT nhi_id, argMax(service, (event_time, trace_id, span_id)) AS service
      FROM nhi_activity ${s.join}
      WHERE toStartOfHour(event_time) IN {hours:Array(DateTime)}
        AND (nhi_id, toStartOfHour(event_time)) IN {pairs:Array(Tuple(String, DateTime))}
        AND event_time < {to:DateTime64(3)}
        ${s.where}
      GROUP BY nhi_id`,
    format: 'JSONEachRow',
    query_params: { hours: [...new Set([...lastSeen.values()].map(hourText))], pairs, to: ms(to), ...s.params },
  })
  const row = z.object({ nhi_id: z.string(), service: z.string() })
  const services = new Map<string, string>()
  for (const raw of await result.json<Record<string, unknown>>()) {
    const r = row.parse(raw)
    services.set(r.nhi_id, r.service)
  }
  return services
}

/** Identities that used one credential fingerprint. */
export interface CredentialUse {
  credentialId: string
  /** Sorted identity ids. */
  ids: string[]
}

const credentialRow = z.object({ credential_id: z.string(), ids: z.array(z.string()) })

/**
 * Every credential fingerprint used in [from, to) and the identities that
 * used it, whatever their business unit (distinct sets need no FINAL). The
 * series pass yields the same for a caller who sees every unit; a limited
 * caller needs this to learn that its identity's credential is shared.
 */
export async function credentialUses(client: ClickHouseClient, window: { from: number; to: number }): Promise<CredentialUse[]> {
  const result = await client.query({
    query: `
      SELECT credential_id, arraySort(groupUniqArray(nhi_id)) AS ids
      FROM nhi_activity
      PREWHERE credential_id != '' AND nhi_id != ''
      WHERE event_time >= {from:DateTime64(3)} AND event_time < {to:DateTime64(3)}
      GROUP BY credential_id
      ORDER BY credential_id`,
    format: 'JSONEachRow',
    query_params: { from: ms(window.from), to: ms(window.to) },
  })
  return (await result.json<Record<string, unknown>>()).map((raw) => {
    const r = credentialRow.parse(raw)
    return { credentialId: r.credential_id, ids: r.ids }
  })
}

/** One identity's use of one shared credential. */
export interface SharedUse {
  credentialId: string
  nhiId: string
  events: number
  firstMs: number
  lastMs: number
  sampleTraceIds: string[]
}

/** Exact use of the given credentials per identity in [from, to), only their rows read past PREWHERE. */
export async function sharedCredentialUse(client: ClickHouseClient, credentials: readonly string[], window: { from: number; to: number }, scope: BusinessUnitScope): Promise<SharedUse[]> {
  if (credentials.length === 0) return []
  // Who shares a credential is counted over every unit (credentialUses); each identity's own use, over the rows the caller may see.
  const s = scoped(scope)
  const result = await client.query({
    query: `
      SELECT credential_id, nhi_id, uniqExact(trace_id, span_id) AS events, min(t) AS first_ms, max(t) AS last_ms,
        arrayMap(x -> x.2, groupArraySorted(${SAMPLE_TRACES * 3})((-toUnixTimestamp64Nano(event_time), trace_id))) AS samples
      FROM (
        SELECT credential_id, nhi_id, trace_id, span_id, event_time, toUnixTimestamp64Milli(event_time) AS t
        FROM nhi_activity ${s.join}
        PREWHERE credential_id IN {credentials:Array(String)}
        WHERE nhi_id != '' AND event_time >= {from:DateTime64(3)} AND event_time < {to:DateTime64(3)} ${s.where}
      )
      GROUP BY credential_id, nhi_id
      ORDER BY credential_id, nhi_id`,
    format: 'JSONEachRow',
    query_params: { credentials, from: ms(window.from), to: ms(window.to), ...s.params },
  })
  const row = z.object({ credential_id: z.string(), nhi_id: z.string(), events: count64, first_ms: int64, last_ms: int64, samples: z.array(z.string()) })
  return (await result.json<Record<string, unknown>>()).map((raw) => {
    const r = row.parse(raw)
    return { credentialId: r.credential_id, nhiId: r.nhi_id, events: r.events, firstMs: r.first_ms, lastMs: r.last_ms, sampleTraceIds: distinctFirst(r.samples, SAMPLE_TRACES) }
  })
}

/** What {@link burstScreen} returns for one (identity, activity type) series, from delivered counts. */
export interface BurstScreenRow {
  /** The series, as SeriesRow.key. */
  key: string
  /** Delivered events per UTC day of the look-back, from `dayStart`. */
  days: number[]
  /** Per window length asked for, per UTC day of the range (from the day `from` falls in): the most delivered events in one window starting that day. */
  maxima: number[][]
}

/**
 * The burst screen (FINDINGS.md, "Cost"): per series, delivered events per
 * day of the look-back and, per window length, the most delivered events in
 * one window starting on each day of the range; an upper bound of every
 * window's exact count. Windows shorter than an hour are bounded by the
 * busiest five-minute slot of the hour (migration 0023) times the slots
 * they span, and by the hour; windows of whole hours are sums of hours.
 */
export async function burstScreen(
  client: ClickHouseClient,
  scan: { dayStart: number; rangeDayStart: number; to: number; windows: readonly number[] },
  scope: BusinessUnitScope,
): Promise<BurstScreenRow[]> {
  const s = scoped(scope)
  const hours = Math.ceil((scan.to - scan.dayStart) / HOUR_MS)
  const days = Math.ceil(hours / 24)
  const firstDay = Math.round((scan.rangeDayStart - scan.dayStart) / DAY_MS)
  const rangeDays = days - firstDay
  // Per window length, the per-day maxima. Below an hour: the busiest slot of an hour times the slots a window spans,
  // at most the hour. One hour: the hour. k hours: sums of k consecutive hours, from the series' cumulative sums
  // (whole arrays sliced and zipped: indexing an array inside a lambda copies it per element).
  const perDay = (values: string) => `CAST(arraySlice(${values}, ${firstDay + 1}, ${rangeDays}) AS Array(UInt32))`
  // Aggregates over the series' hours (middle query) and expressions over them (outer query), per window length.
  const aggregates: string[] = []
  const maxima = scan.windows.map((w, i) => {
    if (w < HOUR_MS) {
      aggregates.push(`maxResample(0, ${days}, 1)(least(n, m * ${Math.ceil(w / 300_000)}), intDiv(h, 24)) AS X${i}`)
      return perDay(`X${i}`)
    }
    const k = Math.round(w / HOUR_MS)
    if (k === 1) {
      aggregates.push(`maxResample(0, ${days}, 1)(n, intDiv(h, 24)) AS X${i}`)
      return perDay(`X${i}`)
    }
    const sums = `arrayMap((a, b) -> a - b, arraySlice(arrayConcat(C, arrayWithConstant(${k}, C[-1])), ${k + 1}, ${hours}), arraySlice(C, 1, ${hours}))`
    return perDay(`arrayMap(c -> arrayMax(c), arraySplit((x, cut) -> cut, ${sums}, arrayMap(j -> j > 0 AND j % 24 = 0, range(${hours}))))`)
  })
  const result = await client.query({
    query: `
      -- 32-bit counts: JSON prints them as numbers, not strings, and the rows parse faster.
      SELECT toString(k) AS key, CAST(days AS Array(UInt32)) AS days, [${maxima.join(', ')}] AS maxima
      FROM (
        SELECT k,
          sumResample(0, ${days}, 1)(n, intDiv(h, 24)) AS days,
          ${aggregates.map((x) => `${x},`).join(' ')}
          arrayConcat([toUInt64(0)], arrayCumSum(sumResample(0, ${hours}, 1)(n, h))) AS C
        FROM (
          -- Per series and hour. A row of the digest is one insert's (or merge's) share of an hour; the busiest
          -- slot of the hour is at most the sum of each row's busiest slot, so no map needs merging.
          SELECT cityHash64(nhi_id, activity_type) AS k,
            intDiv(toUnixTimestamp(hour) - {day_start_s:Int64}, 3600) AS h, sum(delivered) AS n,
            sum(if(empty(tupleElement(five_minutes, 2)), delivered, arrayMax(tupleElement(five_minutes, 2)))) AS m
          FROM nhi_findings_hourly AS digest ${s.join}
          WHERE hour >= {day_start:DateTime} AND hour < {to:DateTime} ${s.where}
          GROUP BY k, h
        )
        GROUP BY k
      )`,
    format: 'JSONEachRow',
    query_params: {
      day_start: seconds(scan.dayStart),
      day_start_s: Math.floor(scan.dayStart / 1000),
      to: seconds(Math.ceil(scan.to / HOUR_MS) * HOUR_MS),
      ...s.params,
    },
    clickhouse_settings: READ_SETTINGS,
  })
  // Thousands of rows of number arrays: checked by hand, as a schema library costs more than the query here.
  const counts = (value: unknown): number[] => {
    if (!Array.isArray(value) || !value.every((n) => typeof n === 'number' && Number.isInteger(n) && n >= 0)) throw new Error('burst screen: expected an array of counts')
    return value as number[]
  }
  return (await result.json<Record<string, unknown>>()).map((raw) => {
    if (typeof raw.key !== 'string' || !Array.isArray(raw.maxima)) throw new Error('burst screen: unexpected row')
    return { key: raw.key, days: counts(raw.days), maxima: raw.maxima.map(counts) }
  })
}

/**
 * The longest silence of each given identity in [lookback, before): the
 * most whole hours between two consecutive hours with activity, from the
 * findings digest (an identity's own cadence, for early dormancy).
 */
export async function longestIdentitySilences(client: ClickHouseClient, ids: readonly string[], window: { lookback: number; before: number }, scope: BusinessUnitScope): Promise<Map<string, number>> {
  if (ids.length === 0) return new Map()
  const s = scoped(scope)
  const result = await client.query({
    query: `
      SELECT nhi_id, arrayMax(arrayPushFront(arrayDifference(arraySort(groupUniqArray(toUnixTimestamp(hour)))), 0)) AS gap_s
      FROM nhi_findings_hourly AS digest ${s.join}
      WHERE nhi_id IN {ids:Array(String)} AND hour >= {lookback:DateTime} AND hour < {before:DateTime} ${s.where}
      GROUP BY nhi_id`,
    format: 'JSONEachRow',
    query_params: { ids, lookback: seconds(floorTo(window.lookback, HOUR_MS)), before: seconds(Math.ceil(window.before / HOUR_MS) * HOUR_MS), ...s.params },
    clickhouse_settings: READ_SETTINGS,
  })
  const row = z.object({ nhi_id: z.string(), gap_s: int64 })
  // Consecutive active hours one hour apart were not silent at all.
  return new Map((await result.json<Record<string, unknown>>()).map((raw) => row.parse(raw)).map((r) => [r.nhi_id, Math.max(0, r.gap_s - 3600) * 1000]))
}
