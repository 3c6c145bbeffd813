/**
 * The trace resolution job. Use events that need their trace to know who
 * acted (migration 0022 puts them in `nhi_trace_pending`) are decided here:
 * each run reads the undecided ones, reads their traces from `otel_traces`,
 * resolves them (./resolve.ts) and writes
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
import { toCount } from '../storage/client.js'
import { TraceGraph, type PlaceholderRule, type Resolution, type TraceSpan } from './resolve.js'

/** Job settings; every one has a default. */
export interface ResolutionOptions {
  /** How long an event waits for missing ancestors before it is settled on what has arrived. */
  waitSeconds: number
  /** Pending events decided per page (a page is one hour of span starts, split by trace into pages of about this many). */
  pageSize: number
  /** Spans read per trace; a larger trace is cut off and its events whose ancestors were not read are `trace_too_large`. */
  maxTraceSpans: number
  /** How far before (and after) its use events a trace's other spans are looked for. */
  lookbackSeconds: number
  /** Inserts in flight during a run may carry an earlier ingested_at than the run's clock. */
  graceSeconds: number
}

/** Defaults, documented in the README ("Agent frameworks"). */
export const RESOLUTION_DEFAULTS: ResolutionOptions = { waitSeconds: 300, pageSize: 20_000, maxTraceSpans: 100_000, lookbackSeconds: 6 * 3600, graceSeconds: 120 }

/** What one run did. */
export interface ResolutionRun {
  resolved: number
  unresolved: number
  sameToolCall: number
  /** Events still waiting for an ancestor. */
  waiting: number
  /** Spans read from otel_traces. */
  spansRead: number
}

/** The placeholder rule of a policy's `identity` section. */
export function placeholderRule(settings: IdentitySettings): PlaceholderRule {
  return { agentIds: new Set(settings.placeholder_agent_ids.map((v) => v.toLowerCase())), uuidAgentIds: settings.uuid_agent_ids_are_placeholders }
}

const pendingRow = z.object({
  trace_id: z.string(),
  span_id: z.string(),
  event_start: z.string(),
  service: z.string(),
  span_name: z.string(),
  span_kind: z.string(),
  business_unit: z.string(),
  credential_id: z.string(),
  activity_type: z.string(),
  activity_name: z.string(),
  status: z.string(),
  duration_ns: z.union([z.string(), z.number()]),
  arrived_at: z.string(),
})
type PendingRow = z.infer<typeof pendingRow>

// Spans of a trace as the resolution reads them. The tool markers are the
// ones migration 0022 derives tool_invocation from (a test holds the two
// to the same answers).
const TRACE_SPANS_SQL = `
  SELECT * FROM (
    SELECT
      TraceId AS trace_id, SpanId AS span_id, ParentSpanId AS parent_span_id, ServiceName AS service, SpanKind AS kind,
      toString(toUnixTimestamp64Nano(Timestamp)) AS start_ns,
      [SpanAttributes['nhi.id'], SpanAttributes['gen_ai.agent.id'],
       multiIf(SpanAttributes['gen_ai.agent.name'] != '', SpanAttributes['gen_ai.agent.name'],
               SpanAttributes['openinference.span.kind'] = 'AGENT' AND SpanAttributes['agent.name'] != '', SpanAttributes['agent.name'],
               SpanAttributes['openinference.span.kind'] = 'AGENT', SpanAttributes['graph.node.id'],
               SpanAttributes['ai.telemetry.functionId']),
       SpanAttributes['nhi.type'],
       SpanAttributes['nhi.owner'], SpanAttributes['nhi.business_unit'],
       multiIf(SpanAttributes['nhi.on_behalf_of'] != '', SpanAttributes['nhi.on_behalf_of'],
               SpanAttributes['user.id'] != '', SpanAttributes['user.id'],
               SpanAttributes['enduser.id'] != '', SpanAttributes['enduser.id'],
               SpanAttributes['traceloop.association.properties.user_id'] != '', SpanAttributes['traceloop.association.properties.user_id'],
               SpanAttributes['ai.telemetry.metadata.userId'] != '', SpanAttributes['ai.telemetry.metadata.userId'],
               SpanAttributes['ai.telemetry.metadata.user_id']),
       multiIf(SpanAttributes['gen_ai.agent.name'] != '', 'gen_ai.agent.name',
               SpanAttributes['openinference.span.kind'] = 'AGENT' AND SpanAttributes['agent.name'] != '', 'agent.name',
               SpanAttributes['openinference.span.kind'] = 'AGENT' AND SpanAttributes['graph.node.id'] != '', 'graph.node.id',
               SpanAttributes['ai.telemetry.functionId'] != '', 'ai.telemetry.functionId', '')] AS s,
      [ResourceAttributes['nhi.id'], ResourceAttributes['gen_ai.agent.id'], ResourceAttributes['gen_ai.agent.name'], ResourceAttributes['nhi.type'],
       ResourceAttributes['nhi.owner'], ResourceAttributes['nhi.business_unit'], ResourceAttributes['nhi.on_behalf_of'], 'gen_ai.agent.name'] AS r,
      SpanAttributes['mcp.method.name'] = 'tools/call' AS is_mcp_tool_call,
      SpanAttributes['nhi.activity.type'] IN ('', 'tool_invocation') AND (
        is_mcp_tool_call
        OR SpanAttributes['gen_ai.operation.name'] = 'execute_tool'
        OR (SpanAttributes['openinference.span.kind'] = 'TOOL' AND SpanAttributes['tool.name'] != '' AND NOT startsWith(SpanName, 'handoff'))
        OR SpanAttributes['traceloop.span.kind'] = 'tool'
        OR SpanName = 'ai.toolCall') AS is_tool,
      SpanAttributes['gen_ai.tool.call.id'] AS tool_call_id,
      SpanAttributes['jsonrpc.request.id'] AS jsonrpc_request_id,
      multiIf(SpanAttributes['gen_ai.tool.name'] != '', SpanAttributes['gen_ai.tool.name'], SpanAttributes['tool.name'] != '', SpanAttributes['tool.name'],
              SpanAttributes['ai.toolCall.name'] != '', SpanAttributes['ai.toolCall.name'],
              SpanAttributes['traceloop.span.kind'] = 'tool', SpanAttributes['traceloop.entity.name'],
              position(SpanName, 'tools/call ') > 0, substring(SpanName, position(SpanName, 'tools/call ') + 11), '') AS tool_name,
      toString(Duration) AS duration_ns
    FROM otel_traces
    WHERE TraceId IN {traces:Array(String)} AND Timestamp >= {lo:DateTime64(9)} AND Timestamp < {hi:DateTime64(9)}
    LIMIT 1 BY TraceId, SpanId
  )
  LIMIT {per_trace:UInt32} BY trace_id`

const traceSpanRow = z.object({
  trace_id: z.string(),
  span_id: z.string(),
  parent_span_id: z.string(),
  service: z.string(),
  kind: z.string(),
  start_ns: z.string(),
  s: z.array(z.string()).length(8),
  r: z.array(z.string()).length(8),
  is_mcp_tool_call: z.union([z.number(), z.boolean()]),
  is_tool: z.union([z.number(), z.boolean()]),
  tool_call_id: z.string(),
  jsonrpc_request_id: z.string(),
  tool_name: z.string(),
  duration_ns: z.string(),
})

/** The spans of the given traces that started in `[lo, hi)`, each once, at most `perTrace` per trace. */
export function readTraceSpans(client: ClickHouseClient, traces: string[], lo: string, hi: string, perTrace: number): Promise<TraceSpanRow[]> {
  return queryRows(client, TRACE_SPANS_SQL, { traces, lo, hi, per_trace: perTrace }, traceSpanRow)
}

/** One span as {@link readTraceSpans} reads it. */
export type TraceSpanRow = z.infer<typeof traceSpanRow>

const AGENT_ACTIVITIES = new Set(['tool_invocation', 'model_call', 'workflow_execution'])

function toTraceSpan(raw: TraceSpanRow, pendingType: string | undefined): TraceSpan {
  const level = (a: string[]) => ({ nhiId: a[0]!, agentId: a[1]!, agentName: a[2]!, type: a[3]!, owner: a[4]!, businessUnit: a[5]!, principal: a[6]!, agentNameKey: a[7]! })
  return {
    spanId: raw.span_id,
    parentSpanId: raw.parent_span_id,
    service: raw.service,
    kind: raw.kind,
    startNs: BigInt(raw.start_ns),
    endNs: BigInt(raw.start_ns) + BigInt(raw.duration_ns),
    span: level(raw.s),
    resource: level(raw.r),
    isTool: Boolean(raw.is_tool),
    isAgentActivity: pendingType !== undefined && AGENT_ACTIVITIES.has(pendingType),
    isMcpToolCall: Boolean(raw.is_mcp_tool_call),
    toolCallId: raw.tool_call_id,
    jsonrpcRequestId: raw.jsonrpc_request_id,
    toolName: raw.tool_name,
  }
}

/** A ClickHouse DateTime64 text shifted by whole seconds. */
function shiftSeconds(time: string, seconds: number): string {
  const ms = Date.parse(`${time.slice(0, 19).replace(' ', 'T')}Z`) + seconds * 1000
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '')
}

async function queryRows<T>(client: ClickHouseClient, query: string, params: Record<string, unknown>, schema: z.ZodType<T>): Promise<T[]> {
  const result = await client.query({ query, format: 'JSONEachRow', query_params: params })
  return (await result.json<Record<string, unknown>>()).map((raw) => schema.parse(raw))
}

const clockRow = z.object({ now: z.string(), settle_before: z.string(), since: z.string() })

/** Runs the job once over every undecided pending event. */
export async function runTraceResolution(client: ClickHouseClient, rule: PlaceholderRule, options: Partial<ResolutionOptions> = {}): Promise<ResolutionRun> {
  const o = { ...RESOLUTION_DEFAULTS, ...options }
  const [clock] = await queryRows(
    client,
    `SELECT toString(now64(3)) AS now, toString(now64(3) - toIntervalSecond({wait:UInt32})) AS settle_before,
            toString(if(count() = 0, toDateTime64('1970-01-01 00:00:00', 3), max(settled_before) - toIntervalSecond({grace:UInt32}))) AS since
     FROM nhi_trace_resolution_runs`,
    { wait: o.waitSeconds, grace: o.graceSeconds },
    clockRow,
  )
  const { now, settle_before: settleBefore, since } = clock!
  const run: ResolutionRun = { resolved: 0, unresolved: 0, sameToolCall: 0, waiting: 0, spansRead: 0 }
  // Pages are an hour of span starts (the pending table's first key), split
  // into as many trace-hash buckets as keep each near pageSize events: a
  // page's reads stay inside its hour, and a trace's events share a page.
  const hours = await queryRows(
    client,
    `SELECT toString(toStartOfHour(event_time)) AS hour, count() AS n FROM nhi_trace_pending
     WHERE ingested_at >= {since:DateTime64(3)} GROUP BY hour ORDER BY hour`,
    { since },
    z.object({ hour: z.string(), n: z.union([z.string(), z.number()]) }),
  )
  for (const { hour, n } of hours) {
    const buckets = Math.max(1, Math.ceil(toCount(n) / o.pageSize))
    for (let bucket = 0; bucket < buckets; bucket++) {
      const candidates = await queryRows(
        client,
        `SELECT trace_id, span_id, toString(any(event_time)) AS event_start, any(service) AS service, any(span_name) AS span_name,
                any(span_kind) AS span_kind, any(business_unit) AS business_unit, any(credential_id) AS credential_id,
                any(activity_type) AS activity_type, any(activity_name) AS activity_name, any(status) AS status,
                any(duration_ns) AS duration_ns, toString(min(ingested_at)) AS arrived_at
         FROM nhi_trace_pending
         WHERE toStartOfHour(event_time) = {hour:DateTime} AND ingested_at >= {since:DateTime64(3)}
           AND cityHash64(trace_id) % {buckets:UInt32} = {bucket:UInt32}
         GROUP BY trace_id, span_id`,
        { hour, since, buckets, bucket },
        pendingRow,
      )
      if (candidates.length === 0) continue
      // Events an earlier run decided (their decision is newer than `since`) are skipped.
      const decided = await queryRows(
        client,
        `SELECT trace_id, span_id FROM nhi_trace_resolutions
         WHERE trace_id IN {traces:Array(String)} AND resolved_at >= {since:DateTime64(3)}`,
        { traces: [...new Set(candidates.map((c) => c.trace_id))], since },
        z.object({ trace_id: z.string(), span_id: z.string() }),
      )
      const done = new Set(decided.map((d) => `${d.trace_id}/${d.span_id}`))
      const page = candidates.filter((c) => !done.has(`${c.trace_id}/${c.span_id}`))
      if (page.length > 0) await decidePage(client, page, rule, o, settleBefore, run)
    }
  }
  // A run that found nothing to decide writes nothing (an idle service
  // changes no stored byte); the next run starts from the same place.
  if (run.resolved + run.unresolved + run.sameToolCall + run.waiting === 0) return run
  await client.insert({
    table: 'nhi_trace_resolution_runs',
    values: [{ run_at: now, settled_before: settleBefore, resolved: run.resolved, unresolved: run.unresolved, same_tool_call: run.sameToolCall, waiting: run.waiting }],
    format: 'JSONEachRow',
  })
  return run
}

async function decidePage(client: ClickHouseClient, page: PendingRow[], rule: PlaceholderRule, o: ResolutionOptions, settleBefore: string, run: ResolutionRun): Promise<void> {
  const byTrace = new Map<string, PendingRow[]>()
  let lo = page[0]!.event_start
  let hi = lo
  for (const row of page) {
    byTrace.set(row.trace_id, [...(byTrace.get(row.trace_id) ?? []), row])
    if (row.event_start < lo) lo = row.event_start
    if (row.event_start > hi) hi = row.event_start
  }
  const spans = await readTraceSpans(client, [...byTrace.keys()], shiftSeconds(lo, -o.lookbackSeconds), shiftSeconds(hi, o.lookbackSeconds), o.maxTraceSpans + 1)
  run.spansRead += spans.length
  const spansOf = new Map<string, TraceSpanRow[]>()
  for (const s of spans) spansOf.set(s.trace_id, [...(spansOf.get(s.trace_id) ?? []), s])

  const ledger: Record<string, unknown>[] = []
  const decisions: Record<string, unknown>[] = []
  const decidedAt = new Date().toISOString().replace('T', ' ').replace('Z', '')
  for (const [traceId, pending] of byTrace) {
    const raw = spansOf.get(traceId) ?? []
    const truncated = raw.length > o.maxTraceSpans
    const pendingType = new Map(pending.map((p) => [p.span_id, p.activity_type]))
    const graph = new TraceGraph(
      raw.slice(0, o.maxTraceSpans).map((s) => toTraceSpan(s, pendingType.get(s.span_id))),
      rule,
      truncated,
    )
    const secondary = graph.sameToolCalls()
    for (const row of pending) {
      const settle = row.arrived_at < settleBefore
      const span = graph.get(row.span_id)
      let decision: Resolution
      if (!span) {
        // Its own raw row was not read: cut off, or outside the time window.
        decision = truncated || settle ? { outcome: 'unresolved', reason: truncated ? 'trace_too_large' : 'ancestor_missing', onBehalfOf: '' } : { outcome: 'waiting', reason: 'ancestor_missing' }
      } else if (secondary.has(row.span_id)) {
        decision = { outcome: 'same_tool_call', primarySpanId: secondary.get(row.span_id)! }
      } else if (!settle && (span.isMcpToolCall || span.toolCallId !== '') && !graph.ancestryComplete(span)) {
        // The span that is billed for this call may be an ancestor still on its way.
        decision = { outcome: 'waiting', reason: 'ancestor_missing' }
      } else {
        decision = graph.identityOf(span, { settle })
      }
      if (decision.outcome === 'waiting') {
        run.waiting++
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
        duration_ns: toCount(row.duration_ns),
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
  // The ledger first: a crash between the two writes leaves the events
  // undecided, and the next run writes the same rows again.
  if (ledger.length > 0) await client.insert({ table: 'nhi_activity', values: ledger, format: 'JSONEachRow' })
  if (decisions.length > 0) await client.insert({ table: 'nhi_trace_resolutions', values: decisions, format: 'JSONEachRow' })
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
    running = runTraceResolution(client, rule(), options)
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
