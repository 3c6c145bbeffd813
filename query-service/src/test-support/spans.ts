/**
 * Spans for tests: rows for otel_traces with sensible defaults, loaded
 * straight into the table (the ledger view derives the rest).
 */
import type { ClickHouseClient } from '@clickhouse/client'
import type { OtelTraceRow } from '../otlp/rows.js'
import { formatUnixNano } from '../otlp/stored-span.js'

let spanCounter = 0

/** A span row with sensible defaults; attributes go on the span unless `resource` is given. */
export function spanRow(options: {
  start: string
  attributes?: Record<string, string>
  resource?: Record<string, string>
  service?: string
  kind?: string
  status?: 'Unset' | 'Ok' | 'Error'
  traceId?: string
  spanId?: string
  parentSpanId?: string
  name?: string
  /** Span duration in nanoseconds (default 1000). */
  durationNs?: number
}): OtelTraceRow {
  spanCounter++
  const startNs = BigInt(new Date(options.start).getTime()) * 1_000_000n
  return {
    Timestamp: formatUnixNano(startNs),
    TraceId: options.traceId ?? spanCounter.toString(16).padStart(32, 'a'),
    SpanId: options.spanId ?? spanCounter.toString(16).padStart(16, 'b'),
    ParentSpanId: options.parentSpanId ?? '',
    TraceState: '',
    SpanName: options.name ?? 'op',
    SpanKind: options.kind ?? 'Internal',
    ServiceName: options.service ?? 'svc',
    ResourceAttributes: { 'service.name': options.service ?? 'svc', ...options.resource },
    ScopeName: 'test',
    ScopeVersion: '',
    SpanAttributes: options.attributes ?? {},
    Duration: String(options.durationNs ?? 1000),
    StatusCode: options.status ?? 'Unset',
    StatusMessage: '',
    'Events.Timestamp': [],
    'Events.Name': [],
    'Events.Attributes': [],
    'Links.TraceId': [],
    'Links.SpanId': [],
    'Links.TraceState': [],
    'Links.Attributes': [],
  }
}

/** Inserts span rows into otel_traces. */
export async function insertSpans(client: ClickHouseClient, rows: OtelTraceRow[]): Promise<void> {
  await client.insert({ table: 'otel_traces', values: rows, format: 'JSONEachRow' })
}
