/**
 * The trace resolution job. Use events that need their trace to know who
 * acted (migration 0022 puts them in `nhi_trace_pending`) are decided here:
 * each run reads the undecided ones, reads their traces from
 * `nhi_trace_spans` (every span's place in its trace), resolves them (./resolve.ts) and writes
 * - the final ledger row to `nhi_activity` (with the identity, or without one
 *   and `identity_source = unresolved:<reason>`), unless another span of the
 *   trace records the same tool call;
 * - the decision to `nhi_trace_resolutions`.
 * A use event whose ancestors have not all arrived waits, and is settled on
 * what has arrived once it has waited `waitSeconds`.
 *
 * Idempotent: a decision made twice (two processes, a crash between the two
 * writes) writes the same ledger row twice, which the ledger's key counts
 * once. Bounded: pages of about `pageSize` events from one hour of span
 * starts, at most `maxTraceSpans` spans read per trace.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { z } from 'zod'
import type { IdentitySettings } from '../policy/index.js'
import { insertFormatted } from '../storage/client.js'
import { count64, readOne, readRows } from '../storage/read.js'
import { TraceGraph, type PlaceholderRule, type Resolution, type TraceSpan } from './resolve.js'
import { UNOBSERVED, type RunObserver } from '../metrics/instruments.js'

/** Job settings; every one has a default. */
export interface ResolutionOptions {
  /** How long an event waits for missing ancestors before it is settled on what has arrived. */
  waitSeconds: number
  /** Pending events decided per page (a page is one hour of span starts, split by trace into pages of about this many). */
  pageSize: number
  /** Spans read per trace; a larger trace is cut off and its events whose ancestors were not read are `trace_too_large`. */
  maxTraceSpans: number
  /** Inserts in flight during a run may carry an earlier ingested_at than the run's clock: each run reads again what arrived this long before it. */
  graceSeconds: number
}

/** Defaults, documented in the README ("Agent frameworks"). */
export const RESOLUTION_DEFAULTS: ResolutionOptions = { waitSeconds: 300, pageSize: 20_000, maxTraceSpans: 100_000, graceSeconds: 30 }

/** What one run did. */
export interface ResolutionRun {
  resolved: number
  unresolved: number
  sameToolCall: number
  /** Events still waiting for an ancestor. */
  waiting: number
  /** Spans read from nhi_trace_spans. */
  spansRead: number
  /** Undecided events read. */
  seen: number
  /** When the oldest event still waiting arrived. */
  oldestWaiting: string | undefined
}

/**
 * SQL for the earliest ingest time an undecided pending event can have: the
 * latest run's settled_before (the epoch before any run).
 */
export const UNDECIDED_SINCE_SQL = `ifNull((SELECT settled_before FROM nhi_trace_resolution_runs ORDER BY run_at DESC LIMIT 1), toDateTime64('1970-01-01 00:00:00', 3))`

/** The placeholder rule of a policy's `identity` section. */
export function placeholderRule(settings: IdentitySettings): PlaceholderRule {
  return { agentIds: new Set(settings.placeholder_agent_ids.map((v) => v.toLowerCase())), uuidAgentIds: settings.uuid_agent_ids_are_placeholders }
}

/** A pending use event as the job reads it (the ledger row derived from the span alone). */
interface PendingRow {
  trace_id: string
  span_id: string
  event_start: string
  service: string
  span_name: string
  span_kind: string
  business_unit: string
  credential_id: string
  activity_type: string
  activity_name: string
  status: string
  duration_ns: string
  arrived_at: string
  /** The span's numeric attributes (migration 0028), as a JSON object of decimal strings. */
  measures: string
}
const PENDING_FIELDS = [
  'trace_id', 'span_id', 'event_start', 'service', 'span_name', 'span_kind', 'business_unit', 'credential_id',
  'activity_type', 'activity_name', 'status', 'duration_ns', 'arrived_at', 'measures',
] as const satisfies ReadonlyArray<keyof PendingRow>


// Spans of the given traces as migration 0022's view recorded them (the
// same derivation that decided which events are tool calls), each span once.
const TRACE_SPANS_SQL = `
  SELECT * FROM (
    SELECT trace_id, span_id, parent_span_id, service, span_kind,
           toString(toUnixTimestamp64Nano(start_time)), toString(duration_ns), facts
    FROM nhi_trace_spans
    WHERE trace_id IN {traces:Array(String)}
    LIMIT 1 BY trace_id, span_id
  )
  LIMIT {per_trace:UInt32} BY trace_id`

/** A span of a trace as {@link readTraceSpans} reads it, in TRACE_SPANS_SQL's column order. */
export type TraceSpanRow = [traceId: string, spanId: string, parentSpanId: string, service: string, kind: string, startNs: string, durationNs: string, facts: string]
/** Fields in a span's `facts` (migration 0022). */
const FACTS = 20
const NO_FACTS: readonly string[] = [...Array<string>(15).fill(''), '0', '0', '', '', '']

/** The spans of the given traces, each once, at most `perTrace` per trace. */
export async function readTraceSpans(client: ClickHouseClient, traces: string[], perTrace: number): Promise<TraceSpanRow[]> {
  return (await stringRows(client, TRACE_SPANS_SQL, { traces, per_trace: perTrace }, 8)) as TraceSpanRow[]
}

/**
 * Runs a query whose rows come back as JSON arrays of `columns` strings and
 * checks them by hand: tens of thousands of rows a page, where a schema
 * parse per row costs more than the query (bench/trace-resolution). So these
 * reads are columnar by position and do not go through storage/read.ts.
 */
async function stringRows(client: ClickHouseClient, query: string, params: Record<string, unknown>, columns: number): Promise<string[][]> {
  const result = await client.query({ query, format: 'JSONCompactEachRow', query_params: params })
  const rows = await result.json<unknown[]>()
  for (const row of rows) {
    if (!Array.isArray(row) || row.length !== columns || !row.every((value) => typeof value === 'string')) {
      throw new Error(`trace resolution: expected ${columns} strings, got ${JSON.stringify(row).slice(0, 200)}`)
    }
  }
  return rows as string[][]
}

const AGENT_ACTIVITIES = new Set(['tool_invocation', 'model_call', 'workflow_execution'])

function toTraceSpan(raw: TraceSpanRow): TraceSpan {
  const [, spanId, parentSpanId, service, kind, startNs, durationNs, facts] = raw
  let f = facts.split('\x1f')
  // A value that itself holds the separator (any attribute can) makes the
  // facts unreadable: the span then counts as naming nothing, rather than
  // stopping the job for every trace.
  if (f.length !== FACTS) f = [...NO_FACTS]
  const span = f.slice(0, 8)
  const resource = f.slice(8, 15)
  const [isTool, isMcpToolCall, toolName, toolCallId, jsonrpcRequestId] = f.slice(15) as [string, string, string, string, string]
  return {
    spanId,
    parentSpanId,
    service,
    kind,
    startNs: BigInt(startNs),
    endNs: BigInt(startNs) + BigInt(durationNs),
    span: { nhiId: span[0]!, agentId: span[1]!, agentName: span[2]!, agentNameKey: span[3]!, type: span[4]!, owner: span[5]!, businessUnit: span[6]!, principal: span[7]! },
    resource: { nhiId: resource[0]!, agentId: resource[1]!, agentName: resource[2]!, agentNameKey: 'gen_ai.agent.name', type: resource[3]!, owner: resource[4]!, businessUnit: resource[5]!, principal: resource[6]! },
    isTool: isTool === '1',
    isMcpToolCall: isMcpToolCall === '1',
    toolCallId,
    jsonrpcRequestId,
    toolName,
  }
}

const clockRow = z.object({ now: z.string(), settle_before: z.string(), seen_before: z.string(), since: z.string() })

/** Runs the job once over every undecided pending event. */
export async function runTraceResolution(client: ClickHouseClient, rule: PlaceholderRule, options: Partial<ResolutionOptions> = {}): Promise<ResolutionRun> {
  const o = { ...RESOLUTION_DEFAULTS, ...options }
  const { now, settle_before: settleBefore, seen_before: seenBefore, since } = await readOne(client, {
    query: `SELECT toString(now64(3)) AS now, toString(now64(3) - toIntervalSecond({wait:UInt32})) AS settle_before,
            toString(now64(3) - toIntervalSecond({grace:UInt32})) AS seen_before, toString(${UNDECIDED_SINCE_SQL}) AS since`,
    params: { wait: o.waitSeconds, grace: o.graceSeconds },
    row: clockRow,
  })
  const run: ResolutionRun = { resolved: 0, unresolved: 0, sameToolCall: 0, waiting: 0, spansRead: 0, seen: 0, oldestWaiting: undefined }
  // A page is a set of whole hours of span starts (the pending table's
  // first key) holding about pageSize events; an hour holding more is split
  // into trace-hash buckets. Every read stays inside its hours, and a
  // trace's events in one hour share a page.
  const hours = await readRows(client, {
    query: `SELECT toString(hour) AS hour, sum(n) AS events, max(n) AS largest_trace FROM (
       SELECT toStartOfHour(event_time) AS hour, trace_id, count() AS n FROM nhi_trace_pending
       WHERE ingested_at >= {since:DateTime64(3)} GROUP BY hour, trace_id)
     GROUP BY hour ORDER BY hour`,
    params: { since },
    row: z.object({ hour: z.string(), events: count64, largest_trace: count64 }),
  })
  const graphs = new GraphCache(2 * o.maxTraceSpans)
  for (const page of pagesOf(hours.map((h) => ({ hour: h.hour, events: h.events, largestTrace: h.largest_trace })), o.pageSize)) {
    // The page's undecided events. An event decided before is skipped
    // however long ago (a late copy of a span is never decided again):
    // nhi_trace_resolutions is ordered by trace and span, so that is a lookup
    // of the page's traces (cheapest), or of its own spans when the page is a
    // slice of one huge trace whose every decision would otherwise be
    // loaded. A span delivered twice is one event (either copy).
    const pageFilter = `toStartOfHour(event_time) IN {hours:Array(DateTime)} AND ingested_at >= {since:DateTime64(3)}
           AND cityHash64(trace_id, if({by_span:Bool}, span_id, '')) % {buckets:UInt32} = {bucket:UInt32}`
    const candidates = (
      await stringRows(
        client,
        `SELECT trace_id, span_id, toString(event_time), service, span_name, span_kind, business_unit, credential_id,
                activity_type, activity_name, status, toString(duration_ns), toString(ingested_at), toJSONString(measures)
         FROM nhi_trace_pending
         WHERE ${pageFilter}
           AND (trace_id, span_id) NOT IN (
             SELECT trace_id, span_id FROM nhi_trace_resolutions
             WHERE ${page.bySpan ? '(trace_id, span_id)' : 'trace_id'} IN (SELECT ${page.bySpan ? 'trace_id, span_id' : 'trace_id'} FROM nhi_trace_pending WHERE ${pageFilter}))
         LIMIT 1 BY trace_id, span_id`,
        { hours: page.hours, since, buckets: page.buckets, bucket: page.bucket, by_span: page.bySpan },
        PENDING_FIELDS.length,
      )
    ).map((row) => Object.fromEntries(PENDING_FIELDS.map((field, i) => [field, row[i]])) as unknown as PendingRow)
    run.seen += candidates.length
    if (candidates.length > 0) await decidePage(client, candidates, rule, o, settleBefore, run, graphs)
  }
  // Nothing undecided: an idle service writes nothing, and the next run
  // starts from the same place (a short read: nothing new is there).
  if (run.seen === 0) return run
  // Every event that arrived before this is decided: the run's start less
  // the grace period, or the oldest event still waiting. The next run and
  // the completeness counts start there instead of re-reading everything
  // the wait could hold.
  const settledBefore = run.oldestWaiting !== undefined && run.oldestWaiting < seenBefore ? run.oldestWaiting : seenBefore
  await client.insert({
    table: 'nhi_trace_resolution_runs',
    values: [{ run_at: now, settled_before: settledBefore, resolved: run.resolved, unresolved: run.unresolved, same_tool_call: run.sameToolCall, waiting: run.waiting }],
    format: 'JSONEachRow',
  })
  return run
}

/** One page of pending events: whole hours, or one bucket of a large hour. */
export interface PendingPage {
  hours: string[]
  buckets: number
  bucket: number
  /** Buckets by span instead of by trace: one trace of the hour alone holds more than a page. */
  bySpan: boolean
}

/**
 * Groups consecutive hours into pages of about `pageSize` events. An hour
 * with more is split into buckets by trace, so a trace's events stay
 * together; if a single trace of the hour has more than a page, by span,
 * so no page holds much more than `pageSize` (each page then reads that
 * trace again, at most maxTraceSpans spans).
 */
export function pagesOf(hours: ReadonlyArray<{ hour: string; events: number; largestTrace: number }>, pageSize: number): PendingPage[] {
  const pages: PendingPage[] = []
  let current: string[] = []
  let events = 0
  const flush = () => {
    if (current.length > 0) pages.push({ hours: current, buckets: 1, bucket: 0, bySpan: false })
    current = []
    events = 0
  }
  for (const h of hours) {
    if (h.events > pageSize) {
      flush()
      const buckets = Math.ceil(h.events / pageSize)
      for (let bucket = 0; bucket < buckets; bucket++) pages.push({ hours: [h.hour], buckets, bucket, bySpan: h.largestTrace > pageSize })
      continue
    }
    if (events + h.events > pageSize) flush()
    current.push(h.hour)
    events += h.events
  }
  flush()
  return pages
}

/**
 * The traces one run has built, kept while they are large enough to be
 * worth it and fit in twice the per-trace limit: a trace with more events
 * than a page is decided over several pages, and reading and indexing its
 * spans once instead of once a page is most of the work.
 */
class GraphCache {
  private readonly entries = new Map<string, CachedGraph>()
  private spans = 0

  constructor(private readonly maxSpans: number) {}

  has(traceId: string): boolean {
    return this.entries.has(traceId)
  }

  get(traceId: string): CachedGraph | undefined {
    return this.entries.get(traceId)
  }

  remember(traceId: string, graph: CachedGraph): void {
    if (graph.spans < 1000 || graph.spans > this.maxSpans) return
    this.entries.set(traceId, graph)
    this.spans += graph.spans
    for (const [id, old] of this.entries) {
      if (this.spans <= this.maxSpans) break
      this.entries.delete(id)
      this.spans -= old.spans
    }
  }
}

interface CachedGraph {
  graph: TraceGraph
  secondary: Map<string, string>
  spans: number
}

async function decidePage(
  client: ClickHouseClient,
  page: PendingRow[],
  rule: PlaceholderRule,
  o: ResolutionOptions,
  settleBefore: string,
  run: ResolutionRun,
  graphs: GraphCache,
): Promise<void> {
  const byTrace = new Map<string, PendingRow[]>()
  for (const row of page) {
    const list = byTrace.get(row.trace_id)
    if (list) list.push(row)
    else byTrace.set(row.trace_id, [row])
  }
  // Traces this run has indexed already (a large one spans pages), held for
  // the whole page; the others are read in batches of at most twice the
  // per-trace limit of spans, so a page of huge traces stays bounded too.
  const pinned = new Map<string, CachedGraph>()
  for (const traceId of byTrace.keys()) {
    const cached = graphs.get(traceId)
    if (cached) pinned.set(traceId, cached)
  }
  const toRead = [...byTrace.keys()].filter((traceId) => !pinned.has(traceId))
  const sizes = toRead.length === 0 ? [] : await stringRows(
    client,
    'SELECT trace_id, toString(count()) FROM nhi_trace_spans WHERE trace_id IN {traces:Array(String)} GROUP BY trace_id',
    { traces: toRead },
    2,
  )
  const sizeOf = new Map(sizes.map(([traceId, n]) => [traceId!, Math.min(Number(n), o.maxTraceSpans + 1)]))
  const batches: string[][] = [[...pinned.keys()]]
  let batchSpans = 0
  for (const traceId of toRead) {
    const size = sizeOf.get(traceId) ?? 0
    if (batches.length === 1 || batchSpans + size > 2 * o.maxTraceSpans) {
      batches.push([])
      batchSpans = 0
    }
    batches[batches.length - 1]!.push(traceId)
    batchSpans += size
  }

  const ledger: Record<string, unknown>[] = []
  const decisions: Record<string, unknown>[] = []
  const decidedAt = new Date().toISOString().replace('T', ' ').replace('Z', '')
  for (const [index, batch] of batches.entries()) {
    if (batch.length === 0) continue
    const spans = index === 0 ? [] : await readTraceSpans(client, batch, o.maxTraceSpans + 1)
    run.spansRead += spans.length
    const spansOf = new Map<string, TraceSpanRow[]>()
    for (const s of spans) {
      const list = spansOf.get(s[0])
      if (list) list.push(s)
      else spansOf.set(s[0], [s])
    }
    for (const traceId of batch) {
      let known = pinned.get(traceId)
      if (!known) {
        const raw = spansOf.get(traceId) ?? []
        const graph = new TraceGraph(raw.slice(0, o.maxTraceSpans).map(toTraceSpan), rule, raw.length > o.maxTraceSpans)
        known = { graph, secondary: graph.sameToolCalls(), spans: Math.min(raw.length, o.maxTraceSpans) }
        graphs.remember(traceId, known)
      }
      decideTrace(traceId, byTrace.get(traceId)!, known, { settleBefore, decidedAt, ledger, decisions, run })
    }
  }
  // The ledger first: a crash between the two writes leaves the events
  // undecided, and the next run writes the same rows again.
  await insertRows(client, 'nhi_activity', LEDGER_COLUMNS, ledger)
  await insertRows(client, 'nhi_trace_resolutions', DECISION_COLUMNS, decisions)
}

/** Decides the pending events of one trace, appending ledger rows and decisions. */
function decideTrace(
  traceId: string,
  pending: PendingRow[],
  known: CachedGraph,
  out: { settleBefore: string; decidedAt: string; ledger: Record<string, unknown>[]; decisions: Record<string, unknown>[]; run: ResolutionRun },
): void {
  const { settleBefore, decidedAt, ledger, decisions, run } = out
  const { graph, secondary } = known
  const truncated = graph.truncated
  for (const row of pending) {
    const settle = row.arrived_at < settleBefore
    const span = graph.get(row.span_id)
    let decision: Resolution
    if (!span) {
      // Its own span was not read: the trace was cut off, or its row expired.
      decision = truncated || settle ? { outcome: 'unresolved', reason: truncated ? 'trace_too_large' : 'ancestor_missing', onBehalfOf: '' } : { outcome: 'waiting', reason: 'ancestor_missing' }
    } else if (secondary.has(row.span_id)) {
      decision = { outcome: 'same_tool_call', primarySpanId: secondary.get(row.span_id)! }
    } else {
      decision = graph.identityOf(span, { settle, agentActivity: AGENT_ACTIVITIES.has(row.activity_type) })
    }
    if (decision.outcome === 'waiting') {
      run.waiting++
      if (run.oldestWaiting === undefined || row.arrived_at < run.oldestWaiting) run.oldestWaiting = row.arrived_at
      continue
    }
    if (decision.outcome === 'same_tool_call') {
      run.sameToolCall++
      decisions.push({ trace_id: traceId, span_id: row.span_id, outcome: 'same_tool_call', nhi_id: '', reason: `billed as span ${decision.primarySpanId}`, resolved_at: decidedAt })
      continue
    }
    const identity = decision.outcome === 'resolved' ? decision.identity : undefined
    if (identity) run.resolved++
    else run.unresolved++
    ledger.push({
      trace_id: traceId,
      span_id: row.span_id,
      event_time: row.event_start,
      service: row.service,
      span_name: row.span_name,
      span_kind: row.span_kind,
      nhi_id: identity?.nhiId ?? '',
      nhi_type: identity?.type ?? '',
      identity_source: identity ? identity.source : `unresolved:${decision.outcome === 'unresolved' ? decision.reason : ''}`,
      owner: identity?.owner ?? (span ? span.span.owner || span.resource.owner : ''),
      business_unit: identity?.businessUnit ?? row.business_unit,
      credential_id: row.credential_id,
      on_behalf_of: decision.onBehalfOf,
      activity_type: row.activity_type,
      activity_name: row.activity_name,
      status: row.status,
      duration_ns: row.duration_ns,
      measures: JSON.parse(row.measures) as unknown,
    })
    decisions.push({
      trace_id: traceId,
      span_id: row.span_id,
      outcome: decision.outcome,
      nhi_id: identity?.nhiId ?? '',
      reason: decision.outcome === 'unresolved' ? decision.reason : identity!.source,
      resolved_at: decidedAt,
    })
  }
}

const LEDGER_COLUMNS = [
  'trace_id', 'span_id', 'event_time', 'service', 'span_name', 'span_kind', 'nhi_id', 'nhi_type', 'identity_source', 'owner',
  'business_unit', 'credential_id', 'on_behalf_of', 'activity_type', 'activity_name', 'status', 'duration_ns',
  'measures',
] as const
const DECISION_COLUMNS = ['trace_id', 'span_id', 'outcome', 'nhi_id', 'reason', 'resolved_at'] as const

/** Inserts rows given as objects, in the columns' order, through the bulk path. */
async function insertRows(client: ClickHouseClient, table: string, columns: readonly string[], rows: Record<string, unknown>[]): Promise<void> {
  if (rows.length === 0) return
  const body = rows.map((row) => JSON.stringify(columns.map((c) => row[c]))).join('\n')
  await insertFormatted(client, table, columns, 'JSONCompactEachRow', Buffer.from(`${body}\n`))
}

/**
 * Runs the job every `intervalMs` until stopped; a failed run is reported
 * and retried at the next tick (the events stay pending meanwhile, counted
 * in completeness as `pending_spans`).
 */
export function scheduleTraceResolution(
  client: ClickHouseClient,
  rule: () => PlaceholderRule,
  intervalMs: number,
  options: Partial<ResolutionOptions>,
  onError: (error: unknown) => void,
  observeRun: RunObserver = UNOBSERVED,
): { stop(): Promise<void>; runNow(): Promise<void> } {
  let running: Promise<void> | undefined
  let stopped = false
  // A failure that lasts (storage away, a full disk) is reported when it
  // starts and then at most every ten minutes, not on every run.
  let failingSince: number | undefined
  let lastReport = 0
  const tick = (): Promise<void> => {
    if (running) return running
    if (stopped) return Promise.resolve()
    running = observeRun(() => runTraceResolution(client, rule(), options))
      .then(() => {
        failingSince = undefined
      })
      .catch((error: unknown) => {
        const now = Date.now()
        if (failingSince === undefined || now - lastReport >= 600_000) {
          failingSince ??= now
          lastReport = now
          onError(error)
        }
      })
      .finally(() => {
        running = undefined
      })
    return running
  }
  const timer = setInterval(() => void tick(), intervalMs)
  timer.unref()
  return {
    runNow: tick,
    stop: async () => {
      stopped = true
      clearInterval(timer)
      await running
    },
  }
}
