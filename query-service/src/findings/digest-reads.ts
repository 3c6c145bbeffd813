/**
 * The digest reads behind GET /v1/findings: what the rules screen with.
 *
 * One read of the findings digest (nhi_identity_hours: per identity,
 * activity type and hour, delivered and failed counts and first/last/last-ok
 * times; nhi_identity_days: per identity and day, owner and credentials;
 * both filled by views since migration 0020) summarises every series of
 * the look-back; partial hours at the edges of the range come from the
 * ledger itself, so every time is exact. Counts there are *delivered*
 * counts, an upper bound of the distinct spans: they only choose which
 * series a rule must look at again (exact-reads.ts).
 *
 * Every value is a bound parameter. SQL text is assembled only from fixed
 * fragments and from counts (how many windows and days are asked for).
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { z } from 'zod'
import type { BusinessUnitScope } from '../identities/effective.js'
import { count64, int64, readRows, readSettings } from '../storage/read.js'
import { DAY_MS, floorTo, HOUR_MS, ms, scoped, seconds } from './reads.js'

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
        FROM nhi_identity_hours
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
  const rows = await readRows(client, {
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
    params: {
      ...source.params,
      baseline_hour: seconds(floorTo(scan.baselineFrom, HOUR_MS)),
      period_origin_ms: scan.period.origin,
      period_ms: scan.period.ms,
      period_shift: periodShift,
      period_shift_ms: periodShift * scan.period.ms,
      period_count: scan.period.count,
      ...s.params,
    },
    row: seriesRow,
    final: true,
    subcolumns: true,
  })
  return rows.map((r) => ({
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
  }))
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
  const rows = await readRows(client, {
    query: `
      SELECT nhi_id, max(owner) AS owner, arraySort(groupUniqArrayArrayIf(credentials, day >= {credential_day:Date})) AS credentials
      FROM nhi_identity_days AS daily ${s.join}
      WHERE day >= {first_day:Date} AND day <= {last_day:Date} ${s.where}
      GROUP BY nhi_id`,
    params: { first_day: day(window.lookback), last_day: day(window.to - 1), credential_day: day(window.credentialFrom), ...s.params },
    row: z.object({ nhi_id: z.string(), owner: z.string(), credentials: z.array(z.string()) }),
  })
  return new Map(rows.map((r) => [r.nhi_id, { owner: r.owner, credentials: r.credentials }]))
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
  const rows = await readRows(client, {
    query: `
      SELECT nhi_id, toUnixTimestamp64Milli(min(first_time)) AS first_ms, toUnixTimestamp64Milli(max(last_time)) AS last_ms,
        toUnixTimestamp64Milli(maxIf(last_ok_time, activity_type = 'secret_rotation')) AS last_rotation_ms
      FROM nhi_identity_hours AS digest ${s.join}
      WHERE hour < {before:DateTime} ${s.where}
      GROUP BY nhi_id`,
    params: { before: seconds(before), ...s.params },
    row: historyRow,
  })
  return rows.map((r) => ({ nhiId: r.nhi_id, firstMs: r.first_ms, lastMs: r.last_ms, lastRotationMs: r.last_rotation_ms }))
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
          FROM nhi_identity_hours AS digest ${s.join}
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
    clickhouse_settings: readSettings({ final: true, subcolumns: true }),
  })
  // Thousands of rows of number arrays: checked by hand, as a schema library costs more than the query here
  // (so not through readRows, whose zod parse per row is that cost).
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
  const rows = await readRows(client, {
    query: `
      SELECT nhi_id, arrayMax(arrayPushFront(arrayDifference(arraySort(groupUniqArray(toUnixTimestamp(hour)))), 0)) AS gap_s
      FROM nhi_identity_hours AS digest ${s.join}
      WHERE nhi_id IN {ids:Array(String)} AND hour >= {lookback:DateTime} AND hour < {before:DateTime} ${s.where}
      GROUP BY nhi_id`,
    params: { ids, lookback: seconds(floorTo(window.lookback, HOUR_MS)), before: seconds(Math.ceil(window.before / HOUR_MS) * HOUR_MS), ...s.params },
    row: z.object({ nhi_id: z.string(), gap_s: int64 }),
    final: true,
    subcolumns: true,
  })
  // Consecutive active hours one hour apart were not silent at all.
  return new Map(rows.map((r) => [r.nhi_id, Math.max(0, r.gap_s - 3600) * 1000]))
}
