/**
 * The exact reads behind GET /v1/findings: what the rules decide on and
 * what findings show.
 *
 * Every count a rule decides on, and every count a finding shows, comes
 * from a narrow read of `nhi_identity_activity` with FINAL (each span once
 * however often it was delivered), keyed by activity type and identity so
 * that it touches only the series the digest reads flagged
 * (digest-reads.ts). First uses, credentials and the service of a last
 * activity come from the ledger, sample trace ids from its identity-sorted
 * copy; declarations from the inventory.
 *
 * Every value is a bound parameter. SQL text is assembled only from fixed
 * fragments and from counts (how many samples were asked for).
 */
import { TupleParam, type ClickHouseClient, type DataFormat } from '@clickhouse/client'
import { z } from 'zod'
import { APPROVED_ACTIVITY, inventoryJoinFor, type BusinessUnitScope } from '../identities/effective.js'
import { toClickHouseTime } from '../storage/time.js'
import { count64, int64, readRows, readSettings } from '../storage/read.js'
import { distinctFirst } from '../telemetry/queries.js'
import { floorTo, HOUR_MS, ms, scoped, seconds, seriesKey, takeTurns } from './reads.js'

/** Sample trace ids per finding. */
export const SAMPLE_TRACES = 3

/** Exact events per growth period (FINAL) of the given series, keyed by seriesKey. */
export async function exactPeriods(
  client: ClickHouseClient,
  series: ReadonlyArray<{ nhiId: string; activityType: string }>,
  period: { origin: number; ms: number; count: number },
  scope: BusinessUnitScope,
): Promise<Map<string, number[]>> {
  if (series.length === 0) return new Map()
  const s = scoped(scope)
  const rows = await readRows(client, {
    query: `
      SELECT nhi_id, activity_type, countResample(0, {period_count:UInt32}, 1)(intDiv(toUnixTimestamp64Milli(event_time) - {period_origin_ms:Int64}, {period_ms:Int64})) AS periods
      FROM nhi_identity_activity FINAL ${s.join}
      WHERE (activity_type, nhi_id) IN {pairs:Array(Tuple(String, String))}
        AND event_time >= {origin:DateTime64(3)} AND event_time < {end:DateTime64(3)} ${s.where}
      GROUP BY nhi_id, activity_type`,
    params: {
      pairs: series.map((x) => new TupleParam([x.activityType, x.nhiId])),
      period_count: period.count,
      period_origin_ms: period.origin,
      period_ms: period.ms,
      origin: ms(period.origin),
      end: ms(period.origin + period.count * period.ms),
      ...s.params,
    },
    row: z.object({ nhi_id: z.string(), activity_type: z.string(), periods: z.array(count64) }),
    final: true,
    subcolumns: true,
  })
  return new Map(rows.map((r) => [seriesKey(r.nhi_id, r.activity_type), r.periods]))
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
  const rows = await readRows(client, {
    query: `
      SELECT id, type, owner, business_unit, approved_activities, toUnixTimestamp64Milli(updated_at) AS updated_ms
      FROM nhi_inventory FINAL
      ${scope ? 'WHERE business_unit IN {business_units:Array(String)}' : ''}
      ORDER BY id`,
    params: scope ? { business_units: scope } : {},
    row: declarationRow,
  })
  return rows.map((r) => ({ id: r.id, type: r.type, owner: r.owner, businessUnit: r.business_unit, approvedActivities: r.approved_activities, updatedMs: r.updated_ms }))
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
const toActivities = (rows: z.output<typeof activityRow>[]): Activity[] =>
  rows.map((r) => ({ nhiId: r.nhi_id, activityType: r.activity_type, activityName: r.activity_name, firstMs: r.first_ms }))

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
  const rows = await readRows(client, {
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
    params: { ids, baseline_from: ms(window.baselineFrom), to: ms(window.to), from_ms: window.from, ...s.params },
    row: activityRow,
  })
  return toActivities(rows)
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
  const rows = await readRows(client, {
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
    params: { ids, from: ms(window.from), to: ms(window.to) },
    row: activityRow,
  })
  return toActivities(rows)
}

/** Exact events (FINAL) in [from, to) of each given activity, keyed by activityKey. */
export async function activityEvents(client: ClickHouseClient, activities: readonly Activity[], window: { from: number; to: number }, scope: BusinessUnitScope): Promise<Map<string, number>> {
  if (activities.length === 0) return new Map()
  const s = scoped(scope)
  const rows = await readRows(client, {
    query: `
      SELECT nhi_id, activity_type, activity_name, count() AS events
      FROM nhi_identity_activity FINAL ${s.join}
      WHERE (activity_type, nhi_id) IN {pairs:Array(Tuple(String, String))} AND activity_name IN {names:Array(String)}
        AND event_time >= {from:DateTime64(3)} AND event_time < {to:DateTime64(3)}
        ${s.where}
      GROUP BY nhi_id, activity_type, activity_name`,
    params: {
      ...s.params,
      pairs: [...new Map(activities.map((a) => [seriesKey(a.nhiId, a.activityType), new TupleParam([a.activityType, a.nhiId])])).values()],
      names: [...new Set(activities.map((a) => a.activityName))],
      from: ms(window.from),
      to: ms(window.to),
    },
    row: z.object({ nhi_id: z.string(), activity_type: z.string(), activity_name: z.string(), events: count64 }),
    final: true,
    subcolumns: true,
  })
  return new Map(rows.map((r) => [activityKey(r.nhi_id, r.activity_type, r.activity_name), r.events]))
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
  // Read as four columns and checked column by column: thousands of busy series are millions of (series, window)
  // rows, and a checked object per row blocked the process for seconds. Windows and counts leave as doubles (JSON
  // numbers; both are far below 2^53).
  const result = await client.query({
    query: `
      SELECT nhi_id, ${byType ? 'activity_type' : "''"} AS type, toFloat64(intDiv(toUnixTimestamp64Milli(event_time), {window_ms:Int64})) AS k, toFloat64(count()) AS n
      FROM nhi_identity_activity FINAL ${s.join}
      WHERE nhi_id IN {ids:Array(String)} AND event_time >= {start:DateTime64(3)} AND event_time < {to:DateTime64(3)}
        ${request.types ? 'AND activity_type IN {types:Array(String)}' : ''}
        ${request.kind === 'failed_token_exchange' ? "AND activity_type = 'token_exchange' AND status = 'error'" : ''}
        ${s.where}
      GROUP BY nhi_id, type, k`,
    query_params: { ids: request.ids, window_ms: request.windowMs, start: ms(request.start), to: ms(request.to), ...(request.types ? { types: request.types } : {}), ...s.params },
    format: 'JSONCompactColumns' as DataFormat,
    clickhouse_settings: readSettings({ final: true, subcolumns: true }),
  })
  const parsed: unknown = JSON.parse(await result.text())
  // No rows come back as [] rather than as empty columns.
  if (Array.isArray(parsed) && parsed.length === 0) return counts
  const [ids, types, windows, ns] = windowColumns.parse(parsed)
  if (types.length !== ids.length || windows.length !== ids.length || ns.length !== ids.length) throw new Error('window counts: columns of different lengths')
  let working = performance.now()
  for (let i = 0; i < ids.length; i++) {
    // Millions of rows take seconds: the receiver and the API get their turns meanwhile.
    if ((i & 4095) === 0) working = await takeTurns(working)
    const key = byType ? seriesKey(ids[i]!, types[i]!) : ids[i]!
    let series = counts.get(key)
    if (!series) counts.set(key, (series = new Map<number, number>()))
    series.set(windows[i]!, ns[i]!)
  }
  return counts
}

/** The columns of {@link windowCounts}: identities, types, window numbers and counts (whole numbers, checked). */
const wholeNumbers = z.array(z.number()).refine((values) => values.every(Number.isSafeInteger), 'window counts: a value is not a whole number')
const windowColumns = z.tuple([z.array(z.string()), z.array(z.string()), wholeNumbers, wholeNumbers])

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
  const samples: string[][] = requests.map(() => [])
  // A limited caller's samples come from the rows it may see only (an identity's rows can name several units).
  const s = scoped(scope)
  // Fifty slices per statement: thousands (a burst in every identity's open hour) exceed what the SQL
  // parser takes, and a short statement keeps requests from queueing long behind it on the embedded engine.
  for (let first = 0; first < requests.length; first += SAMPLE_SLICES_PER_READ) {
    const params: Record<string, unknown> = { ...s.params }
    const parts = requests.slice(first, first + SAMPLE_SLICES_PER_READ).map((r, i) => {
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
    const rows = await readRows(client, {
      query: `SELECT i, trace_id FROM (${parts.map((p) => `(${p})`).join(' UNION ALL ')}) ORDER BY i, event_time DESC, trace_id DESC`,
      params,
      row: z.object({ i: int64, trace_id: z.string() }),
    })
    for (const r of rows) samples[first + r.i]?.push(r.trace_id)
  }
  return samples.map((s) => distinctFirst(s, SAMPLE_TRACES))
}

/** Slices of {@link sampleTraces} asked in one statement. */
const SAMPLE_SLICES_PER_READ = 50

const hourText = (msValue: number) => toClickHouseTime(new Date(Math.floor(msValue / HOUR_MS) * HOUR_MS)).slice(0, 19)

/**
 * The service of each identity's last activity before `to` that the caller's
 * units may see, read from the hour it was last seen in.
 */
export async function lastServices(client: ClickHouseClient, lastSeen: ReadonlyMap<string, number>, to: number, scope: BusinessUnitScope): Promise<Map<string, string>> {
  if (lastSeen.size === 0) return new Map()
  const s = scoped(scope)
  const pairs = [...lastSeen].map(([id, last]) => new TupleParam([id, hourText(last)]))
  const rows = await readRows(client, {
    query: `
      SELECT nhi_id, argMax(service, (event_time, trace_id, span_id)) AS service
      FROM nhi_activity ${s.join}
      WHERE toStartOfHour(event_time) IN {hours:Array(DateTime)}
        AND (nhi_id, toStartOfHour(event_time)) IN {pairs:Array(Tuple(String, DateTime))}
        AND event_time < {to:DateTime64(3)}
        ${s.where}
      GROUP BY nhi_id`,
    params: { hours: [...new Set([...lastSeen.values()].map(hourText))], pairs, to: ms(to), ...s.params },
    row: z.object({ nhi_id: z.string(), service: z.string() }),
  })
  const services = new Map<string, string>()
  for (const r of rows) {
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
  const rows = await readRows(client, {
    query: `
      SELECT credential_id, arraySort(groupUniqArray(nhi_id)) AS ids
      FROM nhi_activity
      PREWHERE credential_id != '' AND nhi_id != ''
      WHERE event_time >= {from:DateTime64(3)} AND event_time < {to:DateTime64(3)}
      GROUP BY credential_id
      ORDER BY credential_id`,
    params: { from: ms(window.from), to: ms(window.to) },
    row: credentialRow,
  })
  return rows.map((r) => ({ credentialId: r.credential_id, ids: r.ids }))
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
  const rows = await readRows(client, {
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
    params: { credentials, from: ms(window.from), to: ms(window.to), ...s.params },
    row: z.object({ credential_id: z.string(), nhi_id: z.string(), events: count64, first_ms: int64, last_ms: int64, samples: z.array(z.string()) }),
  })
  return rows.map((r) => ({ credentialId: r.credential_id, nhiId: r.nhi_id, events: r.events, firstMs: r.first_ms, lastMs: r.last_ms, sampleTraceIds: distinctFirst(r.samples, SAMPLE_TRACES) }))
}

/**
 * Latest trace ids of each identity within the hour of its last activity
 * (`lastSeen`, epoch ms). Read from the identity-sorted copy of the ledger
 * in widening windows that end with that activity: its minute, then its ten
 * minutes, then its hour, each asked only for the identities the narrower
 * one left short of samples. A window that yields enough samples holds the
 * latest of the hour, since nothing of the identity comes after its last
 * activity. A busy identity then costs a minute of its events, not an hour of
 * everyone's (an open hour under steady ingest is millions of spans).
 */
export async function latestTraces(client: ClickHouseClient, lastSeen: ReadonlyMap<string, number>, scope: BusinessUnitScope): Promise<Map<string, string[]>> {
  if (lastSeen.size === 0) return new Map()
  const s = scoped(scope)
  const found = new Map<string, string[]>()
  let left = [...lastSeen]
  for (const [unit, bucket] of [[60_000, 'toStartOfMinute'], [600_000, 'toStartOfTenMinutes'], [HOUR_MS, 'toStartOfHour']] as const) {
    if (left.length === 0) break
    const starts = left.map(([, last]) => floorTo(last, unit))
    let first = Infinity
    let latest = -Infinity
    for (const start of starts) {
      first = Math.min(first, start)
      latest = Math.max(latest, start)
    }
    const rows = await readRows(client, {
      query: `
        SELECT nhi_id, arrayMap(x -> x.2, groupArraySorted(${SAMPLE_TRACES * 3})((-toUnixTimestamp64Nano(event_time), trace_id))) AS samples
        FROM nhi_identity_activity ${s.join}
        WHERE (nhi_id, ${bucket}(event_time)) IN {pairs:Array(Tuple(String, DateTime))}
          AND event_time >= {from:DateTime64(3)} AND event_time < {to:DateTime64(3)}
          ${s.where}
        GROUP BY nhi_id`,
      params: {
        pairs: left.map(([id], i) => new TupleParam([id, seconds(starts[i]!)])),
        from: ms(first),
        to: ms(latest + unit),
        ...s.params,
      },
      row: z.object({ nhi_id: z.string(), samples: z.array(z.string()) }),
    })
    const got = new Map(rows.map((r) => [r.nhi_id, r.samples]))
    const next: Array<[string, number]> = []
    for (const entry of left) {
      const samples = got.get(entry[0]) ?? []
      if (samples.length >= SAMPLE_TRACES * 3 || unit === HOUR_MS) {
        if (samples.length > 0) found.set(entry[0], distinctFirst(samples, SAMPLE_TRACES))
      }
      else next.push(entry)
    }
    left = next
  }
  return found
}
