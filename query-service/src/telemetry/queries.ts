/**
 * Telemetry completeness per service: how many activity spans each service
 * sent, how many of them carried an identity, which attribute values fell
 * outside the vocabulary, and which services stopped sending spans at all.
 *
 * Span counts are exact (each span once however often it was delivered)
 * and are the same numbers billing's completeness block is made of: they
 * come from the usage rollup where billing's planner says the rollup is
 * clean and from the ledger read with FINAL everywhere else.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { CUSTOM_ACTIVITY_TYPE_PATTERN, NHI_TYPES } from '@nhi-meter/instrumentation/semconv'
import { z } from 'zod'
import { loadPlanFacts, planUsage } from '../billing/plan.js'
import { usageSource } from '../billing/queries.js'
import { type TimeRange } from '../http/params.js'
import { toClickHouseTime } from '../storage/time.js'
import { businessUnitCondition, INVENTORY_JOIN, type BusinessUnitScope } from '../identities/effective.js'
import { count64, readFirst, readRows } from '../storage/read.js'
import { tableWriteVersion } from '../storage/write-tracking.js'
import { UNDECIDED_SINCE_SQL } from '../traces/job.js'

/** Activity spans and identified spans of one service. */
export interface ServiceCounts {
  service: string
  spans: number
  identifiedSpans: number
}

const serviceCountsRow = z.object({ service: z.string(), spans: count64, identified: count64 })

/**
 * Spans and identified spans per service in the range, for the rows the
 * caller may see. `rollupGraceSeconds` as for billing (how long after the
 * last rollup run ledger rows count as possibly late).
 */
export async function serviceCounts(client: ClickHouseClient, range: TimeRange, scope: BusinessUnitScope, rollupGraceSeconds?: number): Promise<ServiceCounts[]> {
  // Any policy's summary counts spans alike: the latest one's is read.
  const plan = planUsage(range, await loadPlanFacts(client, range, null, rollupGraceSeconds), 'month')
  const source = usageSource(plan, [], 'none')
  const rows = await readRows(client, {
    query: `
      SELECT service, sum(n) AS spans, sumIf(n, notEmpty(nhi_id)) AS identified
      FROM ${source.sql} AS usage
      ${scope ? INVENTORY_JOIN : ''}
      WHERE 1 ${businessUnitCondition(scope)}
      GROUP BY service
      ORDER BY service`,
    params: { ...source.params, ...(scope ? { business_units: scope } : {}) },
    row: serviceCountsRow,
    final: true,
    subcolumns: true,
  })
  return rows.map((row) => ({ service: row.service, spans: row.spans, identifiedSpans: row.identified }))
}

/** The attributes whose values are checked against the vocabulary. */
export const CHECKED_ATTRIBUTES = ['nhi.type', 'nhi.activity.type'] as const

/** Spans of one service whose attribute carried a value outside the vocabulary. */
export interface AttributeProblem {
  service: string
  attribute: (typeof CHECKED_ATTRIBUTES)[number]
  value: string
  spans: number
  /** Latest trace ids carrying the value. */
  sampleTraceIds: string[]
}

/** Most distinct bad values reported per service and attribute. */
export const MAX_PROBLEM_VALUES = 20
const SAMPLES = 3

const problemRow = z.object({
  service: z.string(),
  attribute: z.enum(CHECKED_ATTRIBUTES),
  value: z.string(),
  spans: count64,
  samples: z.array(z.string()),
})

/**
 * Identified spans whose `nhi.type` is not one of NHI_TYPES, and spans whose
 * `nhi.activity.type` is not a lowercase word, per service and value. Only
 * the offending rows are read past PREWHERE, and they are counted as
 * distinct (TraceId, SpanId), so a re-delivered span counts once.
 */
export async function attributeProblems(client: ClickHouseClient, range: TimeRange, scope: BusinessUnitScope): Promise<AttributeProblem[]> {
  const badType = 'nhi_type NOT IN {known_types:Array(String)}'
  const badActivity = 'NOT match(activity_type, {activity_type_pattern:String})'
  const rows = await readRows(client, {
    query: `
      SELECT service, attribute, value, uniqExact(trace_id, span_id) AS spans,
        arrayMap(x -> x.2, groupArraySorted(${SAMPLES * 3})((-toUnixTimestamp64Nano(event_time), trace_id))) AS samples
      FROM (
        SELECT service, trace_id, span_id, event_time, nhi_id, business_unit,
          arrayJoin(arrayFilter(p -> p.1 != '', [(if(${badType}, 'nhi.type', ''), toString(nhi_type)), (if(${badActivity}, 'nhi.activity.type', ''), toString(activity_type))])) AS problem,
          problem.1 AS attribute, problem.2 AS value
        FROM nhi_activity
        PREWHERE ${badType} OR ${badActivity}
        WHERE event_time >= {from:DateTime64(3)} AND event_time < {to:DateTime64(3)}
      ) AS problems
      ${scope ? INVENTORY_JOIN : ''}
      WHERE 1 ${businessUnitCondition(scope)}
      GROUP BY service, attribute, value
      ORDER BY service, attribute, spans DESC, value
      LIMIT ${MAX_PROBLEM_VALUES} BY service, attribute`,
    params: {
      from: toClickHouseTime(range.from),
      to: toClickHouseTime(range.to),
      // Unidentified spans have no type at all; they count against the identified ratio instead.
      known_types: [...NHI_TYPES, ''],
      activity_type_pattern: CUSTOM_ACTIVITY_TYPE_PATTERN,
      ...(scope ? { business_units: scope } : {}),
    },
    row: problemRow,
  })
  return rows.map((row) => ({ service: row.service, attribute: row.attribute, value: row.value, spans: row.spans, sampleTraceIds: distinctFirst(row.samples, SAMPLES) }))
}

/** Why use events of one service have no identity, with how many (each span once). */
export interface UnidentifiedReason {
  service: string
  /** `no_identity`, or a trace resolution reason (README, "Agent frameworks"). */
  reason: string
  spans: number
}

const reasonRow = z.object({ service: z.string(), reason: z.string(), spans: count64 })

/**
 * Unidentified use events per service and reason in the range. The reason
 * is what the trace resolution job wrote (`identity_source` =
 * `unresolved:<reason>`); events the ledger view settled without an
 * identity have `no_identity`.
 */
export async function unidentifiedReasons(client: ClickHouseClient, range: TimeRange, scope: BusinessUnitScope): Promise<UnidentifiedReason[]> {
  return readRows(client, {
    query: `
      SELECT service, if(startsWith(identity_source, 'unresolved:'), substring(identity_source, 12), 'no_identity') AS reason, count() AS spans
      FROM nhi_activity FINAL
      ${scope ? INVENTORY_JOIN : ''}
      PREWHERE nhi_id = ''
      WHERE event_time >= {from:DateTime64(3)} AND event_time < {to:DateTime64(3)} ${businessUnitCondition(scope)}
      GROUP BY service, reason
      ORDER BY service, reason`,
    params: { from: toClickHouseTime(range.from), to: toClickHouseTime(range.to), ...(scope ? { business_units: scope } : {}) },
    row: reasonRow,
    final: true,
    subcolumns: true,
  })
}

const pendingRow = z.object({ service: z.string(), spans: count64 })

/** Ranges known to hold no pending row, per embedded client, as of a write version of otel_traces. */
const noPendingRanges = new WeakMap<ClickHouseClient, { version: number; ranges: Set<string> }>()
const MAX_REMEMBERED_RANGES = 1000

/** The probe of {@link pendingSpans}: whether any pending row, decided or not, started in the range. */
async function mayHavePending(client: ClickHouseClient, params: { from: string; to: string }, scope: BusinessUnitScope): Promise<boolean> {
  const version = tableWriteVersion(client, 'otel_traces')
  const rangeKey = `${params.from}|${params.to}|${scope?.join('\u0000') ?? ''}`
  const known = noPendingRanges.get(client)
  if (version !== undefined && known?.version === version && known.ranges.has(rangeKey)) return false
  const probe = await readFirst(client, {
    query: PENDING_PROBE_SQL,
    params,
    row: z.object({ n: count64 }),
  })
  if ((probe?.n ?? 0) > 0) return true
  if (version !== undefined) {
    const held = known?.version === version && known.ranges.size < MAX_REMEMBERED_RANGES ? known : { version, ranges: new Set<string>() }
    held.ranges.add(rangeKey)
    noPendingRanges.set(client, held)
  }
  return false
}

/** Whether any pending row, decided or not, started in [{from}, {to}): 1 or 0, as `n`. */
export const PENDING_PROBE_SQL = 'SELECT count() AS n FROM (SELECT 1 FROM nhi_trace_pending WHERE event_time >= {from:DateTime64(3)} AND event_time < {to:DateTime64(3)} LIMIT 1)'

/**
 * Use events still waiting for the trace resolution job, per service, whose
 * span started in the range (each span once). They are in no bill yet; the
 * job decides each within NHI_METER_TRACE_RESOLUTION_WAIT_SECONDS of its
 * arrival. A key limited to business units counts those whose span names
 * one of its units. `probed`: what the caller's own probe of the range
 * found (a bill's plan facts carry one), to skip this one.
 */
export async function pendingSpans(client: ClickHouseClient, range: TimeRange, scope: BusinessUnitScope, probed?: boolean): Promise<Map<string, number>> {
  // The caller may have asked already (a bill's plan facts carry the probe below): none there, nothing to count.
  if (probed === false) return new Map()
  const params = { from: toClickHouseTime(range.from), to: toClickHouseTime(range.to), ...(scope ? { business_units: scope } : {}) }
  // Most ranges (every closed month more than a week old) have no pending
  // row at all, decided or not: one read of the table's first key says so,
  // and a bill pays for no more than that. On the embedded engine, where
  // this process sees every write, that answer holds until otel_traces (the
  // only source of pending rows) is written again.
  if (!probed && !(await mayHavePending(client, params, scope))) return new Map()
  // A decision made at any time counts: a late copy of a span decided long ago is not pending.
  const rows = await readRows(client, {
    query: `
      WITH ${UNDECIDED_SINCE_SQL} AS since
      SELECT service, count() AS spans FROM (
        SELECT trace_id, span_id, any(service) AS service FROM nhi_trace_pending
        WHERE ingested_at >= since AND event_time >= {from:DateTime64(3)} AND event_time < {to:DateTime64(3)}
          ${scope ? 'AND business_unit IN {business_units:Array(String)}' : ''}
        GROUP BY trace_id, span_id)
      WHERE (trace_id, span_id) NOT IN (
        SELECT trace_id, span_id FROM nhi_trace_resolutions
        WHERE trace_id IN (SELECT trace_id FROM nhi_trace_pending WHERE ingested_at >= since AND event_time >= {from:DateTime64(3)} AND event_time < {to:DateTime64(3)}))
      GROUP BY service`,
    params,
    row: pendingRow,
  })
  return new Map(rows.map((r) => [r.service, r.spans]))
}

/** The first `n` distinct values, in order. */
export function distinctFirst(values: readonly string[], n: number): string[] {
  return [...new Set(values)].slice(0, n)
}

const latestRow = z.object({ service: z.string(), samples: z.array(z.string()) })

/**
 * Latest trace ids of unidentified activity spans per service in [from, to),
 * searched backwards a day, then a week, then the rest of the range, so the
 * usual case costs a short read.
 */
export async function unidentifiedSamples(client: ClickHouseClient, services: readonly string[], range: TimeRange): Promise<Map<string, string[]>> {
  const found = new Map<string, string[]>()
  let end = range.to.getTime()
  for (const back of [86_400_000, 7 * 86_400_000, Number.POSITIVE_INFINITY]) {
    const missing = services.filter((s) => !found.has(s))
    const start = Math.max(range.from.getTime(), range.to.getTime() - back)
    if (missing.length === 0 || start >= end) break
    for (const [service, ids] of await unidentifiedSince(client, missing, new Date(start), new Date(end))) found.set(service, ids)
    end = start
  }
  return found
}

async function unidentifiedSince(client: ClickHouseClient, services: readonly string[], since: Date, to: Date): Promise<Map<string, string[]>> {
  const rows = await readRows(client, {
    query: `
      SELECT service, arrayMap(x -> x.2, groupArraySorted(${SAMPLES * 3})((-toUnixTimestamp64Nano(event_time), trace_id))) AS samples
      FROM nhi_activity
      PREWHERE service IN {services:Array(String)} AND nhi_id = ''
      WHERE event_time >= {since:DateTime64(3)} AND event_time < {to:DateTime64(3)}
      GROUP BY service`,
    params: { services, since: toClickHouseTime(since), to: toClickHouseTime(to) },
    row: latestRow,
  })
  return new Map(rows.map((r) => [r.service, distinctFirst(r.samples, SAMPLES)]))
}

const serviceTimeRow = z.object({ service: z.string(), last_ms: count64 })

/**
 * Latest span of any kind (otel_traces, so internal spans count too) per
 * service in [since, to), for the given services or, without a list, for
 * every service that sent one.
 */
export async function lastSpans(client: ClickHouseClient, since: Date, to: Date, services?: readonly string[]): Promise<Map<string, number>> {
  if (services?.length === 0 || since >= to) return new Map()
  const rows = await readRows(client, {
    query: `
      SELECT ServiceName AS service, toUnixTimestamp64Milli(max(Timestamp)) AS last_ms
      FROM otel_traces
      WHERE Timestamp >= {since:DateTime64(3)} AND Timestamp < {to:DateTime64(3)}
        ${services ? 'AND ServiceName IN {services:Array(String)}' : ''}
      GROUP BY ServiceName`,
    params: { since: toClickHouseTime(since), to: toClickHouseTime(to), ...(services ? { services } : {}) },
    row: serviceTimeRow,
  })
  return new Map(rows.map((r) => [r.service, r.last_ms]))
}

/**
 * The latest span before `to` of each given service, searched backwards a
 * day, then a week, then back to `since`, so services that reported
 * recently cost a short read.
 */
export async function lastSpansBefore(client: ClickHouseClient, services: readonly string[], since: Date, to: Date): Promise<Map<string, number>> {
  const found = new Map<string, number>()
  let end = to.getTime()
  for (const back of [86_400_000, 7 * 86_400_000, Number.POSITIVE_INFINITY]) {
    const missing = services.filter((s) => !found.has(s))
    const start = Math.max(since.getTime(), to.getTime() - back)
    if (missing.length === 0 || start >= end) break
    for (const [service, last] of await lastSpans(client, new Date(start), new Date(end), missing)) found.set(service, last)
    end = start
  }
  return found
}

/**
 * The longest silence of each service before its last span, in
 * milliseconds, measured between the minutes in which it sent spans of any
 * kind (an upper bound: the gap between two such minutes plus one minute)
 * from `lookbackMs` before the earliest of the last spans (not before
 * `since`) to each service's last span. One stretch for all services keeps
 * it one short read; a service whose last span is later looks further back,
 * which can only make its usual silence longer.
 */
export async function longestSilences(client: ClickHouseClient, lastSpan: ReadonlyMap<string, number>, since: Date, lookbackMs: number): Promise<Map<string, number>> {
  if (lastSpan.size === 0) return new Map()
  const lasts = [...lastSpan.values()]
  const rows = await readRows(client, {
    query: `
      SELECT service, (arrayMax(arrayDifference(minutes)) + 60) * 1000 AS longest_ms FROM (
        SELECT ServiceName AS service, arraySort(groupUniqArray(toUInt32(toStartOfMinute(Timestamp)))) AS minutes
        FROM otel_traces
        WHERE ServiceName IN {services:Array(String)} AND Timestamp >= {from:DateTime64(3)} AND Timestamp <= {to:DateTime64(3)}
        GROUP BY ServiceName
      )`,
    params: {
      services: [...lastSpan.keys()],
      from: toClickHouseTime(new Date(Math.max(since.getTime(), Math.min(...lasts) - lookbackMs))),
      to: toClickHouseTime(new Date(Math.max(...lasts))),
    },
    row: z.object({ service: z.string(), longest_ms: count64 }),
  })
  return new Map(rows.map((r) => [r.service, r.longest_ms]))
}
