/**
 * Rows for otel_traces: their columns, and the receiver's encoding of a
 * decoded export into JSONCompactEachRow lines in one pass. What each
 * column stores of a span, and which spans are refused, is stored-span.ts.
 */
import type { ScopeSpans, TraceExport } from './model.js'
import { eachStorableSpan, formatUnixNano, hex, idHex, redactedMap, redactedMapJson, redactedText, SPAN_KIND_NAMES, STATUS_CODE_NAMES, valueJson, type StoredResource } from './stored-span.js'

/** One row of otel_traces, keyed by column name as JSONEachRow expects. */
export interface OtelTraceRow {
  Timestamp: string
  TraceId: string
  SpanId: string
  ParentSpanId: string
  TraceState: string
  SpanName: string
  SpanKind: string
  ServiceName: string
  ResourceAttributes: Record<string, string>
  ScopeName: string
  ScopeVersion: string
  SpanAttributes: Record<string, string>
  Duration: string
  StatusCode: string
  StatusMessage: string
  'Events.Timestamp': string[]
  'Events.Name': string[]
  'Events.Attributes': Record<string, string>[]
  'Links.TraceId': string[]
  'Links.SpanId': string[]
  'Links.TraceState': string[]
  'Links.Attributes': Record<string, string>[]
}

/** Column order of the JSONCompactEachRow lines {@link encodeExport} writes. */
export const OTEL_TRACE_COLUMNS = [
  'Timestamp', 'TraceId', 'SpanId', 'ParentSpanId', 'TraceState', 'SpanName', 'SpanKind', 'ServiceName',
  'ResourceAttributes', 'ScopeName', 'ScopeVersion', 'SpanAttributes', 'Duration', 'StatusCode', 'StatusMessage',
  'Events.Timestamp', 'Events.Name', 'Events.Attributes', 'Links.TraceId', 'Links.SpanId', 'Links.TraceState', 'Links.Attributes',
] as const satisfies readonly (keyof OtelTraceRow)[]

/** A decoded export encoded for otel_traces, and what was refused. */
export interface EncodedExport {
  /** JSONCompactEachRow lines, columns in {@link OTEL_TRACE_COLUMNS} order. */
  body: Buffer
  /** Lines in `body`. */
  rows: number
  rejectedSpans: number
  /** One message per distinct reason, for the partial-success error_message. */
  rejectionReasons: string[]
}

const json = JSON.stringify
const QUOTED_SPAN_KINDS = SPAN_KIND_NAMES.map((name) => json(name))
const QUOTED_STATUS_CODES = STATUS_CODE_NAMES.map((name) => json(name))

/**
 * The receiver's path: the export's storable spans as JSONCompactEachRow
 * lines, written in one pass without a row object per span (a test holds
 * them byte for byte to row objects encoded line by line). At tens of
 * thousands of spans a second, those objects and the garbage collection
 * behind them were a fifth of the receiver's time.
 */
export function encodeExport(request: TraceExport): EncodedExport {
  const lines: string[] = []
  // The resource and scope columns, serialized once for all their spans.
  let lastResource: StoredResource | undefined
  let resourceColumns = ''
  let lastScope: ScopeSpans | undefined
  let scopeColumns = ''
  const rejected = eachStorableSpan(request, (span, scope, resource) => {
    if (resource !== lastResource) {
      lastResource = resource
      resourceColumns = `${json(resource.serviceName)},${json(resource.attributes)}`
    }
    if (scope !== lastScope) {
      lastScope = scope
      scopeColumns = `${json(scope.scopeName)},${json(scope.scopeVersion)}`
    }
    const { events, links } = span
    const eventColumns =
      events.length === 0
        ? '[],[],[]'
        : `${json(events.map((e) => formatUnixNano(e.timeUnixNano)))},${json(events.map((e) => redactedText(e.name)))},${json(events.map((e) => redactedMap(e.attributes)))}`
    const linkColumns =
      links.length === 0
        ? '[],[],[],[]'
        : `${json(links.map((l) => idHex(l.traceId)))},${json(links.map((l) => idHex(l.spanId)))},${json(links.map((l) => l.traceState))},${json(links.map((l) => redactedMap(l.attributes)))}`
    lines.push(
      `["${formatUnixNano(span.startTimeUnixNano)}","${hex(span.traceId)}","${hex(span.spanId)}","${idHex(span.parentSpanId)}",${json(span.traceState)},` +
        `${valueJson(span.name)},${QUOTED_SPAN_KINDS[span.kind] ?? '""'},${resourceColumns},${scopeColumns},${redactedMapJson(span.attributes)},` +
        `"${span.endTimeUnixNano - span.startTimeUnixNano}",${QUOTED_STATUS_CODES[span.statusCode] ?? '""'},${valueJson(span.statusMessage)},${eventColumns},${linkColumns}]`,
    )
  })
  return { body: Buffer.from(lines.join('\n')), rows: lines.length, ...rejected }
}
